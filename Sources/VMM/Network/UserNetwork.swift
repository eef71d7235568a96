import Dispatch

#if canImport(Glibc)
  import Glibc
#endif

/// User-mode networking (`--net user`): a guest network 10.0.2.0/24 behind a NAT in the VMM
/// process, made by libslirp (`UserNetworkAddresses`). The guest gets 10.0.2.15 by DHCP; 10.0.2.2
/// is the gateway and the host (its 127.0.0.1 included); 10.0.2.3 answers DNS through the host's
/// resolver. Guest TCP and UDP to the outside become host sockets; `PortForward`s listen on host
/// ports and pass what arrives to the guest. IPv6 is off. No privileges are needed.
///
/// libslirp is not thread-safe, so every libslirp call happens on one thread of its own
/// (`SlirpEventLoop`): it polls libslirp's sockets and a wake-up pipe, runs libslirp's timers, and
/// feeds it the guest's frames, which `send` queues (any thread) before writing to the pipe.
/// Frames for the guest go into `inbox`, which the network card empties on a vCPU thread.
///
/// `init` returns once the stack is up and every forward listens, or throws one line saying what
/// failed (a port in use, an address that is not the host's). `shutdown()` (also run by `deinit`)
/// stops the thread and closes every socket.
public final class UserNetwork: EthernetBackend, @unchecked Sendable {
  /// Why the network could not start.
  public struct StartError: Error, CustomStringConvertible, Equatable {
    /// One line for the user.
    public let description: String
  }

  /// Frames for the guest.
  public let inbox: FrameInbox
  /// The forwards the network was started with.
  public let forwards: [PortForward]
  let channel: Channel
  private var stopped = false

  /// The most guest frames waiting for the network thread before more are dropped.
  static let outboxLimit = 256

  /// Starts the network thread, brings libslirp up and installs `forwards`.
  /// - Parameters:
  ///   - forwards: host ports forwarded into the guest network.
  ///   - inboxLimit: the most frames held for a guest that has not posted receive buffers.
  public init(forwards: [PortForward] = [], inboxLimit: Int = 256) throws(StartError) {
    self.forwards = forwards
    inbox = FrameInbox(limit: inboxLimit)
    guard let channel = Channel(inbox: inbox) else {
      throw StartError(description: "user network: cannot create a wake-up pipe: \(String(cString: strerror(errno)))")
    }
    self.channel = channel
    let started = DispatchSemaphore(value: 0)
    let result = StartResult()
    let forwards = self.forwards
    let running = PThread.detach {
      // libslirp writes to sockets without MSG_NOSIGNAL: a host peer that went away must give
      // EPIPE on this thread, not a SIGPIPE that kills the process (when nobody ignores it).
      var pipeSignal = sigset_t()
      sigemptyset(&pipeSignal)
      sigaddset(&pipeSignal, SIGPIPE)
      pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
      let loop = SlirpEventLoop(channel: channel)
      result.error = loop.start(forwards: forwards)
      started.signal()
      if result.error == nil { loop.run() }
      loop.close()
      channel.finished.signal()
    }
    guard running else {
      channel.closePipe()
      throw StartError(description: "user network: cannot create its host thread")
    }
    started.wait()
    if let error = result.error {
      channel.finished.wait()
      channel.closePipe()
      stopped = true
      throw StartError(description: error)
    }
  }

  deinit { shutdown() }

  /// A frame from the guest, queued for the network thread (dropped and counted when the thread
  /// is more than `outboxLimit` frames behind). Any thread.
  public func send(_ frame: [UInt8]) { channel.post(frame) }

  /// Guest frames dropped because the network thread was behind.
  public var droppedFromGuest: UInt64 { channel.droppedFromGuest }

  /// Stops the network thread and waits for it: libslirp closes its sockets and forwards. Safe to
  /// call more than once; frames sent afterwards are dropped.
  public func shutdown() {
    guard !stopped else { return }
    stopped = true
    channel.requestStop()
    channel.finished.wait()
    channel.closePipe()
  }

  /// The network thread's start-up outcome, handed back to `init`.
  private final class StartResult: @unchecked Sendable {
    var error: String?
  }

  /// What the network thread shares with the rest of the VMM: the guest's frames on their way in,
  /// the stop request, the wake-up pipe and the inbox. Its own lock; nothing of libslirp's.
  final class Channel: @unchecked Sendable {
    let inbox: FrameInbox
    /// Signalled when the network thread has ended.
    let finished = DispatchSemaphore(value: 0)
    /// The wake-up pipe: the thread polls `readEnd`; `post` and `requestStop` write to `writeEnd`.
    let readEnd: Int32
    let writeEnd: Int32
    private let lock = NSLockLike()
    private var outbox: [[UInt8]] = []
    private var stop = false
    private var pipeClosed = false
    private var dropped: UInt64 = 0

    init?(inbox: FrameInbox) {
      var fds: [Int32] = [-1, -1]
      guard pipe(&fds) == 0 else { return nil }
      for fd in fds {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
      }
      readEnd = fds[0]
      writeEnd = fds[1]
      self.inbox = inbox
    }

    /// Queues a guest frame and wakes the thread if it was idle.
    func post(_ frame: [UInt8]) {
      lock.locked {
        guard !stop, outbox.count < UserNetwork.outboxLimit else {
          dropped &+= 1
          return
        }
        outbox.append(frame)
        if outbox.count == 1 { poke() }
      }
    }

    /// Asks the thread to end.
    func requestStop() {
      lock.locked {
        stop = true
        poke()
      }
    }

    /// The frames queued since the last call, and whether the thread must end (network thread).
    func take() -> (frames: [[UInt8]], stop: Bool) {
      lock.locked {
        let frames = outbox
        outbox.removeAll(keepingCapacity: true)
        return (frames, stop)
      }
    }

    var droppedFromGuest: UInt64 { lock.locked { dropped } }

    /// Wakes the thread from `poll` (a full pipe already will). Under the lock, so it never
    /// writes to a pipe `closePipe` closed.
    private func poke() {
      guard !pipeClosed else { return }
      var byte: UInt8 = 1
      _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe after a wake-up (network thread).
    func drainPipe() {
      var buffer = [UInt8](repeating: 0, count: 64)
      while buffer.withUnsafeMutableBytes({ read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Closes the pipe once the thread has ended.
    func closePipe() {
      lock.locked {
        guard !pipeClosed else { return }
        pipeClosed = true
        Glibc.close(readEnd)
        Glibc.close(writeEnd)
      }
    }
  }
}
