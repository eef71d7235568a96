import Interpreter
import Testing
import Translator
import VMM

/// Pause-loop exiting on interp and dbt: a guest spinning on `pause; jmp` ends its run as
/// `.kicked` with `takePauseLoopExit()` true once the detection is on, and runs its whole budget
/// when it is off; a loop without PAUSE never triggers it. Counted in guest steps: no timing.
@Suite struct PauseLoopExitTests {
  /// Runs `code` at 0x10000 (64-bit, `SmallGuestBoot`) for up to `budget` steps with the
  /// detection threshold `pauses`; returns the exit and whether it was a pause loop.
  static func run(_ code: [UInt8], engine: String, pauses: UInt64, budget: UInt64) throws -> (VMExit, Bool) {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: code)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let e: any Engine = engine == "dbt" ? TranslatorEngine() : InterpreterEngine()
    let vm = try e.createVM(memory: memory, options: EngineOptions())
    let vcpu = try vm.createVCPU(index: 0)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    vcpu.setPauseLoopExiting(pauses)
    let exit = try vcpu.run(budget: budget)
    return (exit, vcpu.takePauseLoopExit())
  }

  static let pauseLoop: [UInt8] = [0xF3, 0x90, 0xEB, 0xFC]  // pause; jmp $-2
  static let plainLoop: [UInt8] = [0x90, 0xEB, 0xFD]  // nop; jmp $-1

  @Test(arguments: ["interp", "dbt"]) func aPAUSELoopEndsTheRun(engine: String) throws {
    let (exit, spun) = try Self.run(Self.pauseLoop, engine: engine, pauses: 256, budget: 1_000_000)
    #expect(exit == .kicked)
    #expect(spun)
  }

  @Test(arguments: ["interp", "dbt"]) func withoutDetectionTheLoopRunsItsBudget(engine: String) throws {
    let (exit, spun) = try Self.run(Self.pauseLoop, engine: engine, pauses: 0, budget: 100_000)
    #expect(exit == .budgetExhausted)
    #expect(!spun)
  }

  @Test(arguments: ["interp", "dbt"]) func aLoopWithoutPAUSENeverTriggersIt(engine: String) throws {
    let (exit, spun) = try Self.run(Self.plainLoop, engine: engine, pauses: 1, budget: 100_000)
    #expect(exit == .budgetExhausted)
    #expect(!spun)
  }
}
