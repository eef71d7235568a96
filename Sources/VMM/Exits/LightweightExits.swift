/// Exits the VMM answers on the vCPU's thread while the engine's `run` goes on: what KVM calls
/// lightweight exits (handled in its kernel without the round trip to userspace), for the engines
/// that can offer them (`interp`, `dbt`).
///
/// The engine offers an exit just where it would return it from `run`; an answer completes it as
/// `VirtualCPU.complete(_:)` would and the guest goes on at once, nil sends it the usual way. The
/// VMM answers only accesses that need nothing from the run loop afterwards: no interrupt line
/// raised or lowered, no timer deadline moved, no machine-control or output change
/// (`PortIODevice.isLightweight`). Guest-visible behaviour and instruction counts are those of
/// the heavyweight path; only the time differs. Lightweight exits are counted apart in `--stats`.
public protocol LightweightExitHandler: AnyObject {
  /// The answer to `exit` (`.value` for a read, `.none` for a write), or nil when the run loop
  /// must take it. Called on the vCPU's thread from inside `VirtualCPU.run`.
  func respond(to exit: VMExit) -> ExitResponse?
}
