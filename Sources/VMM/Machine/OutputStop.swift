/// Console output watched for `MachineConfiguration.stopOnOutput`, each stream (COM1, the debug
/// console) on its own. The run stops at the end of the line that holds the text: once one stream
/// has ended that line and no other stream that has shown the text is still in the middle of it
/// (SeaBIOS writes each character to the debug console, then to COM1, so COM1 ends the line one
/// character later). The guest's output decides where the run stops, not time, so a loaded host
/// stops at the same byte as an idle one. Only a line that does not end (a prompt) falls back to a
/// stop `grace` nanoseconds of guest time after the text appeared. Used on the vCPU thread only.
final class OutputStop {
  static let grace: UInt64 = 100_000_000
  let text: String
  private let clock: any GuestClock
  /// Each watched stream's progress.
  private var streams: [OutputWatcher.Progress] = []
  /// When the run loop stops; nil until the text has appeared.
  private(set) var deadline: UInt64?

  init(text: String, clock: any GuestClock) {
    self.text = text
    self.clock = clock
  }

  /// Registers one more watched stream; returns its index for `update`.
  func addStream() -> Int {
    streams.append(.searching)
    return streams.count - 1
  }

  /// Records a stream's progress after its latest output.
  func update(stream: Int, _ progress: OutputWatcher.Progress) {
    guard streams[stream] != progress else { return }
    streams[stream] = progress
    let now = clock.nanoseconds
    if deadline == nil { deadline = now &+ Self.grace }
    if streams.contains(.lineEnded) && !streams.contains(.inMatchedLine) { deadline = now }
  }
}
