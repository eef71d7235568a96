import Foundation
import Interpreter
import Synchronization
import Testing
import VMM
import X86

@testable import Oracles
@testable import Translator

/// How late a pending interrupt is taken while dbt runs a tight translated loop (chained blocks, a
/// backward branch, no exits), in guest instructions:
///
/// - A timer on the deterministic instruction clock: the VMM runs the vCPU with the budget up to
///   the deadline (`VCPURunner`: `InstructionDrivenClock.instructions(until:)`), translated code
///   honours budgets exactly, so the interrupt is taken after exactly N instructions: 0 late, the
///   same instruction as on interp, at CPL 3 and at CPL 0.
/// - A kick (another thread asking the vCPU to stop: pause, stop, an IPI's wake-up): the vCPU
///   checks for one between slices of 4096 instructions, which translated code also honours, so
///   it stops at most one slice (4096 instructions) after the kick.
@Suite struct InterruptLatencyTests {
  static let counter = SystemLayout.data

  /// An endless loop of translated forms over two blocks (a forward Jcc to the next block, a
  /// backward JMP), counting its iterations in memory; at CPL 3 after a SYSRET when `user`.
  static func loopProgram(user: Bool) -> SystemProgram {
    SystemProgram.handWritten { a in
      let top = a.newLabel()
      let mid = a.newLabel()
      if user {
        let loop = a.newLabel()
        a.movAddress(1, loop)
        a.movImm32(11, 0x202)
        a.raw([0x48, 0x0F, 0x07])  // sysretq
        a.bind(loop)
      }
      a.movImm32(3, UInt32(counter))
      a.bind(top)
      a.raw([0x48, 0x83, 0xC0, 0x01])  // add rax, 1
      a.raw([0x48, 0xFF, 0x03])  // inc qword [rbx]
      a.raw([0x48, 0x01, 0xC2])  // add rdx, rax
      a.raw([0x48, 0x39, 0xD0])  // cmp rax, rdx
      a.jcc(5, mid)
      a.bind(mid)
      a.raw([0x48, 0x8D, 0x34, 0x10])  // lea rsi, [rax + rdx]
      a.jmp(top)
    }
  }

  /// What the timer handler saw: the saved RIP and CS it reports on the test port.
  struct Taken: Equatable {
    var retired: UInt64
    var rip: UInt64
    var rax: UInt64
    var savedRIP: UInt64
    var savedCS: UInt64
    var cpl: Int
  }

  /// Runs the loop for exactly `n` instructions (the budget a deterministic timer deadline gives),
  /// delivers the timer's interrupt, and reads the handler's report.
  func takeTimer(after n: UInt64, user: Bool, translated: Bool) throws -> (Taken, translatedInstructions: UInt64) {
    let runner = try SystemRunner(translated: translated)
    runner.load(Self.loopProgram(user: user))
    let cpu = runner.cpu
    #expect(cpu.run(budget: n) == .budgetExhausted)
    let retired = cpu.instructionsRetired
    let rip = cpu.state.rip
    let rax = cpu.state.gpr(0)
    let cpl = cpu.state.cpl
    #expect(cpu.canAcceptExternalInterrupt)
    #expect(cpu.deliverExternalInterrupt(vector: SystemLayout.timerVector) == nil)
    var reported: [UInt64] = []
    while reported.count < 4 {
      guard case .portOut(SystemLayout.testPort, 4, let value) = cpu.run(budget: 100) else {
        Issue.record("the handler did not report")
        break
      }
      reported.append(value)
    }
    #expect(reported.first == 0x4E56_0000 | UInt64(SystemLayout.timerVector))
    let taken = Taken(
      retired: retired, rip: rip, rax: rax, savedRIP: reported.count > 2 ? reported[2] : 0,
      savedCS: reported.count > 3 ? reported[3] : 0, cpl: cpl)
    return (taken, runner.translator?.statistics.translatedInstructions ?? 0)
  }

  @Test(arguments: [false, true], [1, 2, 7, 100, 999, 4096, 10_001, 250_003] as [UInt64])
  func timerIsTakenAtTheExactInstruction(user: Bool, n: UInt64) throws {
    let (dbt, translated) = try takeTimer(after: n, user: user, translated: true)
    let (interp, _) = try takeTimer(after: n, user: user, translated: false)
    // Not one instruction late: the handler sees the state after exactly n instructions, the
    // interrupted RIP is where the loop stood then, and everything equals interp's.
    #expect(dbt.retired == n)
    #expect(dbt.savedRIP == dbt.rip)
    #expect(dbt.savedCS == UInt64(dbt.cpl == 3 ? SystemLayout.userCS : SystemLayout.kernelCS))
    #expect(dbt.cpl == (user && n > 3 ? 3 : 0))
    #expect(dbt == interp)
    // And the loop ran as translated code (all but the set-up and the first pass, which the
    // dispatcher translates).
    if n >= 1000 { #expect(translated >= n - 64) }
  }

  /// A kick from another thread stops a vCPU spinning in an endless translated loop within one
  /// slice: the guest's iteration counter moves by at most 4096 instructions' worth after the
  /// kick. The budget (2^31 instructions) only guards against a hang: a working kick ends the run
  /// long before it, whatever the load.
  @Test(arguments: [false, true])
  func kickStopsAnEndlessTranslatedLoop(user: Bool) throws {
    let program = Self.loopProgram(user: user)
    let image = SystemMemory()
    SystemRunner.loadMemory(image, for: program)
    let memory = try GuestMemory(ramSize: UInt64(SystemLayout.memorySize))
    try memory.write(0, bytes: UnsafeRawBufferPointer(start: image.bytes, count: image.size))
    let vm = InterpreterVM(
      memory: memory, model: .host64, deterministic: false, identity: nil, engineName: "dbt",
      makeTranslator: { () throws(EngineError) -> any BlockExecutor in
        do throws(TranslatorError) { return try DynamicTranslator(codeBytes: 1 << 20) } catch {
          throw EngineError(error.description)
        }
      })
    let vcpu = try vm.createInterpreterVCPU(index: 0)
    SystemRunner.configure(vcpu.cpu, for: program)
    nonisolated(unsafe) let kicked = vcpu
    let counterAtKick = Atomic<UInt64>(0)
    let kicker = Thread {
      // Kick once the loop is seen running, then read the counter: the guest can only have run
      // further after the kick, never less.
      while ((try? memory.read(UInt64.self, at: Self.counter)) ?? 0) < 1000 { sched_yield() }
      kicked.kick()
      counterAtKick.store((try? memory.read(UInt64.self, at: Self.counter)) ?? 0, ordering: .releasing)
    }
    kicker.start()
    let exit = try vcpu.run(budget: 1 << 31)
    #expect(exit == .kicked)
    while counterAtKick.load(ordering: .acquiring) == 0 { sched_yield() }
    let after = try memory.read(UInt64.self, at: Self.counter)
    // Six instructions per iteration: at most one slice of 4096 instructions after the kick.
    #expect(after - counterAtKick.load(ordering: .acquiring) <= 4096 / 6 + 1)
    // The run stopped at a slice boundary, and translated code did the work.
    let retired = vcpu.instructionsRetired ?? 0
    #expect(retired % 4096 == 0)
    let translated = (vcpu.cpu.blockExecutor as? DynamicTranslator)?.statistics.translatedInstructions ?? 0
    #expect(translated > retired / 2)
  }
}
