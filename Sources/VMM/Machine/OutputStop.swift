import Synchronization

/// Console output watched for `MachineConfiguration.stopOnOutput`, each stream (COM1, the debug
/// console) on its own. The run stops at the end of the line that holds the text: once one stream
/// has ended that line and no other stream that has shown the text is still in the middle of it
/// (SeaBIOS writes each character to the debug console, then to COM1, so COM1 ends the line one
/// character later). The guest's output decides where the run stops, not time, so a loaded host
/// stops at the same byte as an idle one. Only a line that does not end (a prompt) falls back to a
/// stop `grace` nanoseconds of guest time after the text appeared.
///
/// Thread-safe: output arrives on whichever vCPU thread handles the device exit, and every runner
/// reads `deadline` when it decides whether to stop or how long it may sleep, so the progress is
/// kept under a lock of its own rather than relying on the callers' locks.
final class OutputStop: @unchecked Sendable {
  static let grace: UInt64 = 100_000_000
  let text: String
  private let clock: any GuestClock
  private struct Progress {
    /// Each watched stream's progress.
    var streams: [OutputWatcher.Progress] = []
    /// When the run loop stops; nil until the text has appeared.
    var deadline: UInt64?
  }
  private let progress = Mutex(Progress())

  init(text: String, clock: any GuestClock) {
    self.text = text
    self.clock = clock
  }

  /// When the run loop stops; nil until the text has appeared.
  var deadline: UInt64? { progress.withLock { $0.deadline } }

  /// Registers one more watched stream; returns its index for `update`.
  func addStream() -> Int {
    progress.withLock {
      $0.streams.append(.searching)
      return $0.streams.count - 1
    }
  }

  /// Records a stream's progress after its latest output.
  func update(stream: Int, _ latest: OutputWatcher.Progress) {
    progress.withLock {
      guard $0.streams[stream] != latest else { return }
      $0.streams[stream] = latest
      let now = clock.nanoseconds
      if $0.deadline == nil { $0.deadline = now &+ Self.grace }
      if $0.streams.contains(.lineEnded) && !$0.streams.contains(.inMatchedLine) { $0.deadline = now }
    }
  }
}
