import Testing
@testable import MirrorModel
@testable import MirrorFeed

/// `ChunkedArray` must behave like an array (values, order, copies independent) across chunk
/// boundaries, and a store that is still shared must stay as it was when its copy changes.
@Suite struct ChunkedArrayTests {
    @Test func followsAnArrayThroughAppendsWritesSwapsAndRemovals() {
        var chunked = ChunkedArray<Int>(), model: [Int] = []
        var generator = SystemRandomNumberGenerator()
        for step in 0..<5000 {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0 where !model.isEmpty:
                #expect(chunked.removeLast() == model.removeLast())
            case 1 where !model.isEmpty:
                let i = Int.random(in: 0..<model.count, using: &generator)
                chunked[i] = -step
                model[i] = -step
            case 2 where model.count > 1:
                let (i, j) = (Int.random(in: 0..<model.count, using: &generator), Int.random(in: 0..<model.count, using: &generator))
                chunked.swapAt(i, j)
                model.swapAt(i, j)
            default:
                chunked.append(step)
                model.append(step)
            }
            if step % 250 == 0 { #expect(Array(chunked) == model) }
        }
        #expect(Array(chunked) == model && chunked.count == model.count)
    }

    @Test func repeatingFillsWholeAndPartialChunks() {
        for count in [0, 1, 511, 512, 513, 2048] {
            var filled = ChunkedArray(repeating: 7, count: count)
            #expect(filled.count == count && filled.allSatisfy { $0 == 7 })
            filled.append(8)
            #expect(filled.count == count + 1 && filled.last == 8 && Array(filled.dropLast()) == Array(repeating: 7, count: count))
        }
    }

    @Test func aCopyChangesAloneAcrossChunks() {
        var original = ChunkedArray<String>()
        for i in 0..<1500 { original.append("s\(i)") }
        var copy = original
        copy[0] = "changed"
        copy[1499] = "changed too"
        for _ in 0..<600 { copy.removeLast() }
        copy.append("new")
        #expect(original.count == 1500 && original[0] == "s0" && original[1499] == "s1499" && original[900] == "s900")
        #expect(copy.count == 901 && copy[0] == "changed" && copy[900] == "new" && copy[899] == "s899")
        #expect(original != copy)
    }

    @Test func aKeptStoreIsUnchangedByTheNextDelta() throws {
        var store = MirrorStore()
        var state = FeedFixtures.state(services: 1200)
        try store.applySnapshot(state, revision: 1)
        let kept = store
        var changed = state.services[700]
        changed.ips = ["10.99.0.1"]
        try store.apply(.upsertService(changed), revision: 2)
        try store.apply(.deleteService(state.services[3].key), revision: 3)
        #expect(kept.state == state.normalized && kept.revision == 1)
        state.services[700] = changed
        state.services.remove(at: 3)
        #expect(store.state == state.normalized && store.services[changed.key] == changed)
    }
}
