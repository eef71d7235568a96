/// The host side of a virtual network card: where the guest's Ethernet frames go and where frames
/// for the guest come from. `VirtioNet` is the card; `UserNetwork` (libslirp) is the one backend.
public protocol EthernetBackend: AnyObject, Sendable {
  /// Takes one frame the guest transmitted (destination MAC first, no frame check sequence).
  /// Called on a vCPU thread under the machine's device lock; must not block for long.
  func send(_ frame: [UInt8])
  /// Frames waiting for the guest; the backend's own thread fills it, the device empties it.
  var inbox: FrameInbox { get }
  /// Frames from the guest the backend dropped because it was behind (any thread).
  var droppedFromGuest: UInt64 { get }
}
