import Foundation
import Testing

@testable import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// The console writer thread: the vCPU side never blocks, bounded memory, every byte either written
/// or counted as dropped, and a reader that goes away reported once.
@Suite struct HostOutputWriterTests {
  /// A pipe; the read end is returned for the test to read or close.
  func pipePair() -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    #expect(pipe(&fds) == 0)
    return (fds[0], fds[1])
  }

  @Test func everythingQueuedIsWrittenInOrder() {
    let (r, w) = pipePair()
    let writer = HostOutputWriter(descriptor: w, closeOnDeinit: true)
    var expected: [UInt8] = []
    for i in 0..<200 {
      let chunk = Array("line \(i)\n".utf8)
      expected += chunk
      writer.enqueue(chunk)
    }
    #expect(writer.finish())
    #expect(writer.droppedBytes == 0 && writer.writtenBytes == UInt64(expected.count))
    var got = [UInt8](repeating: 0, count: expected.count + 1)
    let n = read(r, &got, got.count)
    #expect(Array(got.prefix(max(n, 0))) == expected)
    close(r)
  }

  @Test func aFullQueueDropsAndCountsInsteadOfBlocking() {
    let (r, w) = pipePair()
    let writer = HostOutputWriter(descriptor: w, closeOnDeinit: true, limit: 4096)
    // Nobody reads: one enqueue far larger than the bound returns at once, the excess dropped.
    let big = [UInt8](repeating: 0x78, count: 1 << 20)
    writer.enqueue(big)
    #expect(writer.droppedBytes >= UInt64(big.count - 4096))
    #expect(writer.finish(stallNanoseconds: 0) == false || writer.writtenBytes == 4096)
    // A chunk the writer thread had already taken when finish gave up is counted when that write
    // ends (at once for a pipe with room): wait for it, with a watchdog, not a timed expectation.
    let watchdog = Date() + 60
    while writer.droppedBytes + writer.writtenBytes < UInt64(big.count) && Date() < watchdog { usleep(1000) }
    #expect(writer.droppedBytes + writer.writtenBytes == UInt64(big.count))
    close(r)
  }

  @Test func aClosedReaderIsReportedOnceAndLaterBytesAreDropped() {
    signal(SIGPIPE, SIG_IGN)
    let (r, w) = pipePair()
    close(r)
    let writer = HostOutputWriter(descriptor: w, closeOnDeinit: true)
    let reported = DispatchSemaphore(value: 0)
    let failures = Counter()
    writer.onClosed { failure in
      #expect(failure == .readerClosed)
      failures.add()
      reported.signal()
    }
    writer.enqueue(Array("hello\n".utf8))
    #expect(reported.wait(timeout: .now() + 60) == .success)
    writer.enqueue(Array("more\n".utf8))
    writer.finish()
    #expect(writer.failure == .readerClosed)
    #expect(writer.droppedBytes == 11 && writer.writtenBytes == 0)
    #expect(failures.value == 1)
  }

  @Test func consoleOutputReportsDropsOnlyForDescriptors() {
    var captured: [UInt8] = []
    let capture = ConsoleOutput(callback: { captured += $0 })
    capture.write([1, 2, 3])
    #expect(captured == [1, 2, 3] && capture.finish() == 0)
    #expect(ConsoleOutput().finish() == 0)
  }
}

/// A thread-safe counter for callbacks.
final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func add() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}
