import Testing
@testable import MirrorAgent
import MirrorModel
import MirrorFeed

@Suite("FeedLinkRecorder")
struct FeedLinkRecorderTests {
    @Test("connected, lost with its reason, re-established counts one reconnect")
    func followsTheLink() {
        let recorder = FeedLinkRecorder()
        #expect(recorder.link.connected == false)
        recorder.record(.established)
        #expect(recorder.link.connected)
        #expect(recorder.link.reconnects == 0)
        recorder.record(.lost(reason: "connection reset by peer"))
        #expect(!recorder.link.connected)
        #expect(recorder.link.lastError == "connection reset by peer")
        recorder.record(.lost(reason: "connection refused"))
        recorder.record(.established)
        #expect(recorder.link.connected)
        #expect(recorder.link.reconnects == 1)
        #expect(recorder.link.lastError == "connection refused")
    }
}
