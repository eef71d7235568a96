#if canImport(Glibc)
  import Glibc
#endif

/// Where guest console bytes (the UART, the debug console) go: a host file descriptor with a small
/// buffer flushed at newlines, when full and whenever the guest idles or stops; or a callback.
public final class ConsoleOutput {
  private enum Sink {
    case descriptor(Int32, closeOnDeinit: Bool)
    case callback(([UInt8]) -> Void)
    case discard
  }
  private let sink: Sink
  private var buffer: [UInt8] = []
  private static let capacity = 4096

  /// Writes to an open file descriptor (1 for stdout).
  public init(descriptor: Int32, closeOnDeinit: Bool = false) {
    sink = .descriptor(descriptor, closeOnDeinit: closeOnDeinit)
    buffer.reserveCapacity(Self.capacity)
  }

  /// Hands every byte to `callback` at once (tests capture guest output this way).
  public init(callback: @escaping ([UInt8]) -> Void) { sink = .callback(callback) }

  /// Drops everything.
  public init() { sink = .discard }

  deinit {
    flush()
    if case .descriptor(let fd, true) = sink { close(fd) }
  }

  public func write(_ bytes: [UInt8]) {
    switch sink {
    case .discard: return
    case .callback(let c): c(bytes)
    case .descriptor:
      buffer.append(contentsOf: bytes)
      if buffer.count >= Self.capacity || bytes.contains(0x0A) { flush() }
    }
  }

  /// Writes out anything buffered (retrying after signals and short writes).
  public func flush() {
    guard case .descriptor(let fd, _) = sink, !buffer.isEmpty else { return }
    var offset = 0
    buffer.withUnsafeBytes { raw in
      while offset < raw.count {
        let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
        if n < 0 {
          if errno == EINTR || errno == EAGAIN { continue }
          break
        }
        offset += n
      }
    }
    buffer.removeAll(keepingCapacity: true)
  }
}
