import Interpreter
import Testing
import Translator
import VMM

/// `--stats` on dbt counts the inline indirect-branch table's lookups: every RET of a loop looks
/// its return address up there; only the first, before the block after the call is translated,
/// misses and goes through the dispatcher.
@Suite struct IndirectBranchStatisticsTests {
  static let guest: [UInt8] = [
    0xB9, 0x64, 0x00, 0x00, 0x00,  // mov ecx, 100
    0xE8, 0x07, 0x00, 0x00, 0x00,  // loop: call f
    0xFF, 0xC9,  // dec ecx
    0x75, 0xF7,  // jnz loop
    0xE6, 0x10,  // out 0x10, al
    0xF4,  // hlt
    0xC3,  // f: ret
  ]

  @Test func everyReturnOfALoopIsCountedAsAHitOrAMiss() throws {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: Self.guest)
    let vm = try #require(
      try TranslatorEngine().createVM(memory: memory, options: EngineOptions()) as? InterpreterVM)
    let vcpu = try vm.createInterpreterVCPU(index: 0)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    var controls = ExitControls()
    controls.exitOnAllPorts = true
    vcpu.exitControls = controls
    var exit = VMExit.budgetExhausted
    for _ in 0..<10 where exit == .budgetExhausted || exit == .kicked { exit = try vcpu.run(budget: 100_000) }
    #expect(exit == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0)))
    let counters = Dictionary(uniqueKeysWithValues: vcpu.engineCounters.map { ($0.name, $0.value) })
    let hits = counters["dbt-indirect-hits"] ?? 0
    let misses = counters["dbt-indirect-misses"] ?? 0
    #expect(hits + misses == 100, "\(counters)")
    #expect(misses >= 1 && misses <= 2)
  }
}
