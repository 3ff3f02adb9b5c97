import Foundation

/// Writes one line to stderr (errors and diagnostics never go to stdout, which scripts parse).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
