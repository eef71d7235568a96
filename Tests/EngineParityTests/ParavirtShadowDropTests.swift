import Foundation
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Dropping the engine's copies of the guest's page tables while a sibling vCPU runs guest code
/// leaves that sibling running correctly: vCPU 1 keeps reading a window page and counts what it
/// reads; vCPU 0 remaps the window between two frames a hundred times with `update_va_mapping`
/// and a local flush (on a host whose KVM shadows the guest's page tables, each one a drop of
/// KVM's shadows: `KVMVirtualMachine.dropShadowPageTables`), and after each waits until vCPU 1
/// has read twice more, so vCPU 1 runs guest code across every drop. Every value vCPU 1 reads
/// must be one of the two frames' (no fault, no exit, no stray value), and vCPU 0 must read its
/// own update at once each time. Nothing depends on timing: the waits are for events, and the
/// machine's timeout turns a hang into a failure.
@Suite struct ParavirtShadowDropTests {
  static let guest = ParavirtTestGuest.source(
    #"""
      START_VCPU1
      mov %rax, 0x08(%rbp)
    1:
      pause
      cmpq $0, count(%rip)
      je 1b
      xor %r12d, %r12d
    2:
      // remap the window: frame B on even rounds, its own frame A on odd ones, local flush
      lea val_b(%rip), %rax
      lea val_a(%rip), %rcx
      test $1, %r12
      cmovnz %rcx, %rax
      mov (%rax), %rsi
      lea window(%rip), %rdi
      mov $2, %edx
      HCALL 14
      or %rax, 0x10(%rbp)
      // this vCPU sees its own update at once
      mov window(%rip), %rax
      mov $VALUE_B, %ecx
      mov $VALUE_A, %edx
      test $1, %r12
      cmovnz %rdx, %rcx
      cmp %rcx, %rax
      je 3f
      incq 0x18(%rbp)
    3:
      // wait until vCPU 1 has read the window twice more
      mov count(%rip), %r13
      add $2, %r13
    4:
      pause
      cmp count(%rip), %r13
      ja 4b
      inc %r12
      cmp $100, %r12
      jne 2b
      mov %r12, 0x20(%rbp)
      movq $1, flag(%rip)
      WAIT_UNTIL ack, 1
      DONE

    ap_entry:
      lea results(%rip), %rbp
      mov $VALUE_A, %r8d
      mov $VALUE_B, %r9d
    6:
      mov window(%rip), %rax
      cmp %r8, %rax
      je 7f
      cmp %r9, %rax
      je 7f
      incq 0x28(%rbp)
      mov %rax, 0x30(%rbp)
    7:
      lock incq count(%rip)
      cmpq $0, flag(%rip)
      je 6b
      movq $1, ack(%rip)
    8:
      pause
      jmp 8b
    """#,
    data: #"""
      flag:
        .quad 0
      ack:
        .quad 0
      count:
        .quad 0
      """#,
    done: "PV-DROP-DONE")

  /// Boots the guest on `e` with two vCPUs, gives it the window's two L1 entry values, runs it and
  /// checks what both vCPUs saw.
  static func run(engine e: any Engine) throws {
    let (machine, memory) = try ParavirtTestGuest.boot(Self.guest, on: e, cpus: 2) {
      $0.stopOnOutput = "PV-DROP-DONE"
    }
    let original = try ParavirtTestGuest.prepareWindow(machine, memory)
    #expect(original & 0x000F_FFFF_FFFF_F000 == ParavirtTestGuest.windowFrame)

    let outcome = machine.run()
    #expect(outcome.reason == .outputMatched("PV-DROP-DONE"), "\(outcome.reason)")
    let word = { (offset: UInt64) in try ParavirtTestGuest.word(memory, offset) }
    #expect(try word(0x08) == 0, "vcpu_op(up)")
    #expect(try word(0x10) == 0, "update_va_mapping results, or'ed")
    #expect(try word(0x18) == 0, "remaps vCPU 0 did not see at once")
    #expect(try word(0x20) == 100, "remaps made")
    let lastStray = try word(0x30)
    #expect(try word(0x28) == 0, "stray values vCPU 1 read (last: 0x\(String(lastStray, radix: 16)))")
    #expect(try word(ParavirtTestGuest.ownData + 0x10) >= 200, "reads vCPU 1 made (count)")
    if let kvm = machine.engineVM as? KVMVirtualMachine, kvm.shadowsGuestPageTables {
      #expect(kvm.shadowDrops >= 100, "drops of KVM's shadow page tables")
    }
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func aSiblingRunsOnWhileTablesAreRemapped(engine: String) throws {
    try Self.run(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func aSiblingRunsOnWhileTablesAreRemappedOnKVM() throws {
    try Self.run(engine: try KVMEngine())
  }
}
