import Foundation
import Testing
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// The host side of `--serial stdio`: the reader thread moves bytes into the queue and wakes the
/// vCPU thread.
@Suite struct HostConsoleInputTests {
  @Test func readerThreadQueuesInputAndWakesTheVCPUThread() throws {
    var fds: [Int32] = [-1, -1]
    try #require(pipe(&fds) == 0)
    let queue = HostInputQueue()
    let wakeup = WakeupEvent()
    let input = HostConsoleInput(descriptor: fds[0], queue: queue, wake: { wakeup.signal() })
    _ = Array("ls\n".utf8).withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
    var received: [UInt8] = []
    // A watchdog, not a timing expectation: up to 60 s for the reader thread on a loaded host.
    for _ in 0..<1200 where received.count < 3 {
      wakeup.wait(timeout: 50_000_000)
      received += queue.drain()
    }
    #expect(received == Array("ls\n".utf8))
    input.restore()
    close(fds[1])
    close(fds[0])
  }
}
