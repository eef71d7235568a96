import Foundation
import Interpreter
import KVMEngine
import Scheduling
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Steal time for a paravirtual guest: two vCPUs of a deprivileged guest on a pool of one pCPU.
/// vCPU 1 is brought up while vCPU 0 spins on the only pCPU, and vCPU 0 waits for vCPU 1's work,
/// so each of them waits for the pCPU at least once; `vcpu_op(get_runstate_info)` then shows time
/// in RUNSTATE_runnable (Xen's steal time) for both. Nothing here depends on how long anything
/// takes: only that the two vCPUs had to take turns.
@Suite struct ParavirtStealTimeTests {
  static let guest = ParavirtTestGuest.source(
    #"""
      lea ctx(%rip), %rbx
      CONTEXT ap_entry, ap_stack_top
      VCPUOP 0, 1, %rbx
      mov %rax, 0x08(%rbp)
      VCPUOP 1, 1, $0
      mov %rax, 0x10(%rbp)
      WAIT_UNTIL apdone, 1
      lea 0x100(%rbp), %rax
      VCPUOP 4, 1, %rax
      mov %rax, 0x18(%rbp)
      lea 0x200(%rbp), %rax
      VCPUOP 4, 0, %rax
      mov %rax, 0x20(%rbp)
      DONE

    ap_entry:
      mov $100000, %ecx
    2:
      incq apcount(%rip)
      loop 2b
      movq $1, apdone(%rip)
      VCPUOP 2, 1, $0
      jmp .
    """#,
    data: #"""
      apdone:
        .quad 0
      apcount:
        .quad 0
      """#,
    done: "PV-STEAL-DONE")

  static func run(engine e: any Engine) throws {
    let session = SchedulingSession(pcpus: 1, parameters: ScheduledRunTests.parameters, keepingEvents: true)
    let (machine, memory) = try ParavirtTestGuest.boot(Self.guest, on: e, cpus: 2) {
      $0.stopOnOutput = "PV-STEAL-DONE"
      $0.scheduling = session.addMachine(vcpuCount: 2)
    }
    session.start()
    let outcome = machine.run()
    session.finish()
    #expect(outcome.reason == .outputMatched("PV-STEAL-DONE"), "\(outcome.reason)")
    let word = { (offset: UInt64) in try ParavirtTestGuest.word(memory, offset) }
    #expect(try word(0x08) == 0 && word(0x10) == 0 && word(0x18) == 0 && word(0x20) == 0)
    // vcpu_runstate_info { state @0, state_entry_time @8, time[running, runnable, blocked, offline] @16 }
    #expect(try word(0x100 + 16 + 8) > 0, "vCPU 1 waited for the pCPU: steal time")
    #expect(try word(0x100 + 16) > 0, "vCPU 1 ran")
    #expect(try word(0x200) == 0, "vCPU 0 reads its own runstate while running")
    #expect(try word(0x200 + 16 + 8) > 0, "vCPU 0 waited for the pCPU: steal time")
    ScheduledRunTests.checkInvariants(session)
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func waitingForThePCPUIsStealTime(engine: String) throws {
    try Self.run(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func waitingForThePCPUIsStealTimeOnKVM() throws {
    try Self.run(engine: try KVMEngine())
  }
}
