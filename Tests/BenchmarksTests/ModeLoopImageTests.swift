import Benchmarks
import Interpreter
import Launcher
import Testing
import VMM

/// The per-mode loop's boot sector: well formed, and on Trivisor's engines it runs exactly
/// 5 instructions per iteration in every mode and ends through isa-debug-exit.
@Suite struct ModeLoopImageTests {
  @Test func sectorIsABootSectorWithItsFieldsPatched() {
    let sector = ModeLoop.bootSector(mode: .long64, iterations: 0x0102_0304)
    #expect(sector.count == 512)
    #expect(sector[510] == 0x55 && sector[511] == 0xAA)
    #expect(Array(sector[4..<8]) == [0x04, 0x03, 0x02, 0x01])
    #expect(sector[8] == 64)
    let floppy = ModeLoop.floppyImage(mode: .real16, iterations: 7)
    #expect(floppy.count == 1_474_560)
    #expect(Array(floppy[0..<512]) == ModeLoop.bootSector(mode: .real16, iterations: 7))
    #expect(floppy[512...].allSatisfy { $0 == 0 })
  }

  @Test func modesParseFromTheirBitWidth() {
    #expect(ModeLoop.Mode(argument: "16") == .real16)
    #expect(ModeLoop.Mode(argument: "32") == .protected32)
    #expect(ModeLoop.Mode(argument: "64") == .long64)
    #expect(ModeLoop.Mode(argument: "8") == nil)
    #expect(ModeLoop.Mode(argument: "x") == nil)
  }

  /// The instructions between a 1-iteration and an N-iteration run are exactly 5 (N - 1): the
  /// loop is what the MIPS figure divides by, whatever the mode switches before it cost.
  @Test(arguments: ModeLoop.Mode.allCases, ["interp", "interp-general", "dbt"])
  func loopRetiresFiveInstructionsPerIteration(mode: ModeLoop.Mode, engineName: String) throws {
    let make: () throws -> any Engine = {
      engineName == "interp-general" ? GeneralPathEngine() : try EngineRegistry.make(engineName)
    }
    let one = try EngineLoopRun.run(engine: try make(), mode: mode, iterations: 1, timeoutSeconds: 30)
    let many = try EngineLoopRun.run(engine: try make(), mode: mode, iterations: 1000, timeoutSeconds: 30)
    let a = try #require(one.instructionsRetired)
    let b = try #require(many.instructionsRetired)
    #expect(b - a == ModeLoop.instructions(iterations: 1000))
    #expect(ModeLoop.instructions(iterations: 1000) == 4995)
  }

  @Test func generalPathEngineTurnsTheFastPathOff() throws {
    let memory = try GuestMemory(ramSize: 1 << 20)
    let vm = try GeneralPathEngine().createVM(memory: memory, options: EngineOptions())
    let vcpu = try #require(try vm.createVCPU(index: 0) as? InterpreterVirtualCPU)
    #expect(!vcpu.cpu.fastPathEnabled)
  }
}
