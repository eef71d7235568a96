import Interpreter
import Testing
import Translator
import VMM

/// Lightweight exits (`LightweightExitHandler`): port accesses the VMM answers while the engine's
/// `run` goes on, on `interp` (through the CPU model's access responder) and on `dbt` (IN and OUT
/// translated into a helper call, the interpreter behind a side exit when the VMM declines).
@Suite struct LightweightExitTests {
  /// A handler that answers port 0x80 writes and 0x61 reads (with `readValue`) and declines the
  /// rest, counting what it answered.
  final class PortAnswers: LightweightExitHandler {
    let readValue: UInt64
    var writes: [PortAccess] = []
    var reads = 0
    var declined = 0
    init(readValue: UInt64) { self.readValue = readValue }
    func respond(to exit: VMExit) -> ExitResponse? {
      guard case .io(let access) = exit else { return nil }
      switch (access.port, access.isWrite) {
      case (0x80, true):
        writes.append(access)
        return ExitResponse.none
      case (0x61, false):
        reads += 1
        return .value(readValue)
      default:
        declined += 1
        return nil
      }
    }
  }

  /// 64-bit code: ten times OUT 0x80 (AL, then AX and EAX through DX) and IN from 0x61 into AL,
  /// AX (port in DX) and EAX, each merged into a register, then OUT 0x10, which the handler
  /// declines: a full exit.
  static let guest: [UInt8] = [
    0xB9, 0x0A, 0x00, 0x00, 0x00,  // mov ecx, 10
    0x48, 0xBE, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // loop: mov rsi, 0x1122334455667788
    0x48, 0x89, 0xF0,  // mov rax, rsi
    0xE4, 0x61,  // in al, 0x61
    0x48, 0x89, 0xC7,  // mov rdi, rax      (AL merged: 0x11223344556677F0)
    0x48, 0x89, 0xF0,  // mov rax, rsi
    0x66, 0xBA, 0x61, 0x00,  // mov dx, 0x61
    0x66, 0xED,  // in ax, dx
    0x49, 0x89, 0xC0,  // mov r8, rax       (AX merged: 0x112233445566DEF0)
    0x48, 0x89, 0xF0,  // mov rax, rsi
    0xED,  // in eax, dx
    0x49, 0x89, 0xC1,  // mov r9, rax       (EAX zero-extended: 0x9ABCDEF0)
    0xB0, 0x07,  // mov al, 7
    0xE6, 0x80,  // out 0x80, al
    0x66, 0xBA, 0x80, 0x00,  // mov dx, 0x80
    0x66, 0xB8, 0x34, 0x12,  // mov ax, 0x1234
    0x66, 0xEF,  // out dx, ax
    0xB8, 0x78, 0x56, 0x34, 0x12,  // mov eax, 0x12345678
    0xEF,  // out dx, eax
    0xFF, 0xC9,  // dec ecx
    0x75, 0xC3,  // jnz loop
    0xE6, 0x10,  // out 0x10, al
    0xF4,  // hlt
  ]

  /// A vCPU at the guest's start; `userMode`: at CPL 3 with IOPL 0, the TSS's I/O bitmap allowing
  /// every port (`bitmapAllows`, its bits are zeros in the TSS) or the bitmap past the TSS's limit.
  static func vcpu(engine: String, userMode: Bool = false, bitmapAllows: Bool = true) throws -> InterpreterVirtualCPU {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: guest)
    let engines: [String: any Engine] = ["interp": InterpreterEngine(), "dbt": TranslatorEngine()]
    let vm = try #require(try engines[engine]!.createVM(memory: memory, options: EngineOptions()) as? InterpreterVM)
    let vcpu = try vm.createInterpreterVCPU(index: 0)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000, userMode: userMode)
    if !bitmapAllows { try memory.write(UInt16(0x68), at: SmallGuestBoot.tss + 0x66) }
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    var registers = boot.registers
    registers.rflags = 0x2  // IOPL 0
    try vcpu.setRegisters(registers)
    var controls = ExitControls()
    controls.exitOnAllPorts = true
    controls.exceptionBitmap = 1 << 13
    vcpu.exitControls = controls
    return vcpu
  }

  /// Runs until an exit other than a budget's or a kick's (bounded).
  static func run(_ vcpu: InterpreterVirtualCPU) throws -> VMExit {
    for _ in 0..<100 {
      let exit = try vcpu.run(budget: 100_000)
      if exit != .budgetExhausted && exit != .kicked { return exit }
    }
    Issue.record("the guest did not stop")
    return .budgetExhausted
  }

  @Test(arguments: ["interp", "dbt"])
  func answeredAccessesGoOnInsideTheEngineAndDeclinedOnesExit(engine: String) throws {
    let vcpu = try Self.vcpu(engine: engine)
    let handler = PortAnswers(readValue: 0x9234_5678_9ABC_DEF0)
    vcpu.lightweightExits = handler
    defer { vcpu.lightweightExits = nil }
    let exit = try Self.run(vcpu)
    #expect(exit == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0x78)))
    #expect(handler.reads == 30)
    #expect(handler.writes.count == 30)
    #expect(
      Array(handler.writes.prefix(3)) == [
        PortAccess(port: 0x80, size: 1, isWrite: true, value: 7),
        PortAccess(port: 0x80, size: 2, isWrite: true, value: 0x1234),
        PortAccess(port: 0x80, size: 4, isWrite: true, value: 0x1234_5678),
      ])
    let r = try vcpu.registers()
    #expect(r.rdi == 0x1122_3344_5566_77F0)
    #expect(r.r8 == 0x1122_3344_5566_DEF0)
    #expect(r.r9 == 0x9ABC_DEF0)
    #expect(r.rcx == 0)
    // 1 + 10 x 20 instructions before the declined OUT.
    #expect(vcpu.instructionsRetired == 201)
    if engine == "dbt" {
      let answered = vcpu.engineCounters.first { $0.name == "dbt-port-io-answered" }?.value
      #expect(answered == 60)  // every answered access ran in generated code
    }
  }

  @Test(arguments: ["interp", "dbt"])
  func withoutAHandlerEveryAccessIsAFullExit(engine: String) throws {
    let vcpu = try Self.vcpu(engine: engine)
    let exit = try Self.run(vcpu)
    #expect(exit == .io(PortAccess(port: 0x61, size: 1, isWrite: false)))
    #expect(vcpu.instructionsRetired == 3)
  }

  /// At CPL 3 with IOPL 0 the TSS's I/O bitmap decides (the interpreter's business: on dbt the
  /// helper leaves it to a side exit). Allowed, the accesses are answered as at CPL 0; without a
  /// bitmap the first IN faults with #GP before any handler sees it.
  @Test(arguments: ["interp", "dbt"])
  func aboveIOPLTheTSSBitmapDecides(engine: String) throws {
    let allowed = try Self.vcpu(engine: engine, userMode: true)
    let answers = PortAnswers(readValue: 0x9234_5678_9ABC_DEF0)
    allowed.lightweightExits = answers
    #expect(try Self.run(allowed) == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0x78)))
    allowed.lightweightExits = nil
    #expect(answers.reads == 30 && answers.writes.count == 30)
    #expect(try allowed.registers().r9 == 0x9ABC_DEF0)
    #expect(allowed.instructionsRetired == 201)

    let denied = try Self.vcpu(engine: engine, userMode: true, bitmapAllows: false)
    let handler = PortAnswers(readValue: 0)
    denied.lightweightExits = handler
    defer { denied.lightweightExits = nil }
    #expect(try Self.run(denied) == .exception(vector: 13, errorCode: 0))
    #expect(handler.reads == 0 && handler.declined == 0)
    #expect(try denied.registers().rip == 0x10000 + 18)  // at the IN
  }

  /// The same guest in a machine, lightweight exits on and off: the same end, the accesses to
  /// port 0x80 (the diagnostic port, lightweight) counted apart or as full exits.
  @Test(arguments: ["interp", "dbt"])
  func theMachineAnswersTheDiagnosticPortInsideTheEngine(engine: String) throws {
    var outcomes: [RunOutcome] = []
    for lightweight in [true, false] {
      let memory = try GuestMemory(ramSize: 2 << 20)
      // Stop through isa-debug-exit (port 0xF4) instead of port 0x10.
      var code = Self.guest
      code[code.count - 2] = 0xF4
      try memory.write(0x10000, bytes: code)
      let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
      var configuration = MachineConfiguration(timeoutSeconds: 60)
      configuration.lightweightExits = lightweight
      let engines: [String: any Engine] = ["interp": InterpreterEngine(), "dbt": TranslatorEngine()]
      let machine = try Machine(memory: memory, boot: boot, engine: engines[engine]!, configuration: configuration)
      outcomes.append(machine.run())
    }
    for outcome in outcomes { #expect(outcome.reason == .debugExit(value: 0x78)) }
    let (on, off) = (outcomes[0].statistics, outcomes[1].statistics)
    // Port 0x80: 30 writes; port 0x61 (the system control port, its reads lightweight): 30 reads.
    #expect(on.lightweightExits == ["io-out": 30, "io-in": 30])
    #expect(on.reasons.first { $0.reason == "io-out" }?.count == 1)  // the debug exit
    #expect(on.reasons.first { $0.reason == "io-in" } == nil)
    #expect(off.lightweightExits == nil)
    #expect(off.reasons.first { $0.reason == "io-out" }?.count == 31)
    #expect(off.reasons.first { $0.reason == "io-in" }?.count == 30)
    #expect(on.table.contains("lightweight exits (answered inside the engine, not counted above): "))
  }
}
