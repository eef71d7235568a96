/// Where guest console bytes (the UART, the debug console) go: a host file descriptor, written by
/// a `HostOutputWriter` off the vCPU thread (bounded, drops counted); a callback; or nowhere.
public final class ConsoleOutput {
  private enum Sink {
    case descriptor(HostOutputWriter)
    case callback(([UInt8]) -> Void)
    case discard
  }
  private let sink: Sink

  /// Writes to an open file descriptor (1 for stdout) from a writer thread; at most `limit` bytes
  /// wait to be written.
  public init(descriptor: Int32, closeOnDeinit: Bool = false, limit: Int = HostOutputWriter.defaultLimit) {
    sink = .descriptor(HostOutputWriter(descriptor: descriptor, closeOnDeinit: closeOnDeinit, limit: limit))
  }

  /// Hands every byte to `callback` at once (tests capture guest output this way).
  public init(callback: @escaping ([UInt8]) -> Void) { sink = .callback(callback) }

  /// Drops everything.
  public init() { sink = .discard }

  deinit {
    if case .descriptor(let w) = sink { w.finish(stallNanoseconds: 0) }
  }

  /// Queues `bytes`; never blocks.
  public func write(_ bytes: [UInt8]) {
    switch sink {
    case .discard: return
    case .callback(let c): c(bytes)
    case .descriptor(let w): w.enqueue(bytes)
    }
  }

  /// Called once, on the writer thread, when the host descriptor stops accepting output (its
  /// reader closed it). Callback and discarding outputs never call it.
  public func onClosed(_ handler: @escaping @Sendable (HostOutputWriter.Failure) -> Void) {
    if case .descriptor(let w) = sink { w.onClosed(handler) }
  }

  /// Writes out what is queued, giving up when the reader has taken nothing for
  /// `stallNanoseconds`; then stops the writer. Returns the bytes dropped over the whole run.
  @discardableResult
  public func finish(stallNanoseconds: UInt64 = 2_000_000_000) -> UInt64 {
    guard case .descriptor(let w) = sink else { return 0 }
    w.finish(stallNanoseconds: stallNanoseconds)
    return w.droppedBytes
  }

  /// Bytes dropped so far because the host side did not keep up or was closed.
  public var droppedBytes: UInt64 {
    if case .descriptor(let w) = sink { return w.droppedBytes }
    return 0
  }
}
