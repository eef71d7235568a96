import Foundation
import Testing

@testable import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// Files the user names are opened without ever blocking, and refused in one line when unusable.
@Suite struct HostFileTests {
  func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "trivisor-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  }

  @Test func aFIFOIsRefusedWithoutWaitingForAWriterOrReader() throws {
    let path = temporaryPath("fifo")
    #expect(mkfifo(path, 0o600) == 0)
    defer { unlink(path) }
    #expect(throws: HostFileError.self) { _ = try HostFile.readRegular(path, what: "image") }
    do {
      _ = try HostFile.readRegular(path, what: "image")
    } catch {
      #expect(error.description == "image '\(path)' is a FIFO, not a regular file")
    }
    #expect(throws: HostFileError.self) { _ = try HostFile.openOutput(path, what: "--serial file") }
  }

  @Test func directoriesEmptyAndMissingFilesAreOneLine() throws {
    for (path, fragment) in [("/", "is a directory"), ("/nonexistent/file", "No such file")] {
      do {
        _ = try HostFile.readRegular(path, what: "image")
        Issue.record("\(path) was accepted")
      } catch {
        #expect(error.description.contains(fragment) && !error.description.contains("\n"))
      }
    }
    let empty = temporaryPath("empty")
    #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
    defer { unlink(empty) }
    #expect(throws: HostFileError.self) { _ = try HostFile.readRegular(empty, what: "initrd") }
  }

  @Test func regularFilesReadAndOutputsOpen() throws {
    let path = temporaryPath("file")
    try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
    defer { unlink(path) }
    #expect(try HostFile.readRegular(path, what: "image") == [1, 2, 3])
    let fd = try HostFile.openOutput(path, what: "--serial file")
    #expect(fd >= 0)
    close(fd)
  }

  @Test func outputPathsAreCheckedBeforeTheRun() throws {
    #expect(throws: HostFileError.self) { try HostFile.checkOutputPath("/tmp", what: "--stats-json file") }
    #expect(throws: HostFileError.self) {
      try HostFile.checkOutputPath("/nonexistent/dir/stats.json", what: "--stats-json file")
    }
    let path = temporaryPath("stats")
    try HostFile.checkOutputPath(path, what: "--stats-json file")
    try HostFile.write(Array("{}".utf8), to: path, what: "--stats-json file")
    defer { unlink(path) }
    #expect(try HostFile.readRegular(path, what: "stats") == Array("{}".utf8))
  }
}
