import Foundation
import VMM

/// The per-mode loop on one of Trivisor's engines: the boot sector loaded as a flat real-mode
/// binary at 0:7C00 (the state a PC BIOS leaves before a boot sector runs, without the BIOS) on a
/// fresh 32 MiB machine, run until the guest's isa-debug-exit write.
public struct EngineLoopRun: Sendable {
  /// From making the machine to the end of the run.
  public var wallSeconds: Double
  /// Guest instructions the engine retired, when it counts them.
  public var instructionsRetired: UInt64?

  /// Runs the loop of `iterations` in `mode` on a machine of `engine`; throws unless the guest
  /// ended through isa-debug-exit with 0 (exit status 1).
  public static func run(
    engine: any Engine, mode: ModeLoop.Mode, iterations: UInt32, timeoutSeconds: Double
  ) throws(ModeLoopError) -> EngineLoopRun {
    let start = DispatchTime.now().uptimeNanoseconds
    let outcome: RunOutcome
    do {
      let memory = try GuestMemory(ramSize: 32 << 20)
      let boot = try ImageLoader.load(
        image: ModeLoop.bootSector(mode: mode, iterations: iterations), into: memory,
        options: LoadOptions(flatAddress: ModeLoop.loadAddress, flatMode: .real))
      let machine = try Machine(
        memory: memory, boot: boot, engine: engine, configuration: MachineConfiguration(timeoutSeconds: timeoutSeconds))
      outcome = machine.run()
    } catch { throw ModeLoopError("\(engine.name): cannot start the loop: \(error)") }
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    guard outcome.exitStatus == 1 else {
      let reason = outcome.reason.description.split(separator: "\n").first.map(String.init) ?? ""
      throw ModeLoopError("\(engine.name): the guest did not end through isa-debug-exit: \(reason)")
    }
    return EngineLoopRun(wallSeconds: wall, instructionsRetired: outcome.statistics.instructionsRetired)
  }
}
