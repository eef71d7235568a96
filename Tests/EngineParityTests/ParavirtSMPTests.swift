import Foundation
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Secondary vCPUs of a deprivileged guest, started the Xen way: vCPU 0 fills a
/// `vcpu_guest_context` (RIP, RSP, RAX, a trap table with a #UD handler, the kernel GS base, its
/// own root table), `vcpu_op(initialise)` validates it, `up` runs it. vCPU 1 checks what it got,
/// takes a #UD through its own trap table, goes down; vCPU 0 sees it down, brings it up again, and
/// it resumes after its `down`. The errors: -EINVAL before initialise and for a non-canonical RIP,
/// -EFAULT for an unmapped context, -EPERM for a root frame of the monitor, -EEXIST for a second
/// initialise, -ENOENT past the last vCPU, -EINVAL for downing the last vCPU up.
@Suite struct ParavirtSMPTests {
  static let guest = ParavirtTestGuest.source(
    #"""
      lea ctx(%rip), %rbx
      CONTEXT ap_entry, ap_stack_top
      movq $0x246, 520+144(%rbx)
      movq $0x77, 520+80(%rbx)
      lea gsword(%rip), %rax
      mov %rax, 5152(%rbx)
      movb $6, 720+6*16(%rbx)
      movw $0xe033, 720+6*16+2(%rbx)
      lea ap_ud(%rip), %rax
      mov %rax, 720+6*16+8(%rbx)
      VCPUOP 3, 1, $0
      mov %rax, 0x08(%rbp)
      VCPUOP 1, 1, $0
      mov %rax, 0x10(%rbp)
      movabs $0x0000800000000000, %rax
      xchg %rax, 520+128(%rbx)
      mov %rax, %r12
      VCPUOP 0, 1, %rbx
      mov %rax, 0x18(%rbp)
      mov %r12, 520+128(%rbx)
      VCPUOP 0, 1, $0x10
      mov %rax, 0x58(%rbp)
      // a root table that is not the domain's: a frame of the monitor (top of RAM)
      mov 4984+24(%rbx), %r12
      movq $0x3fff000, 4984+24(%rbx)
      VCPUOP 0, 1, %rbx
      mov %rax, 0x60(%rbp)
      mov %r12, 4984+24(%rbx)
      VCPUOP 0, 1, %rbx
      mov %rax, 0x20(%rbp)
      VCPUOP 0, 1, %rbx
      mov %rax, 0x28(%rbp)
      VCPUOP 3, 5, $0
      mov %rax, 0x30(%rbp)
      VCPUOP 2, 0, $0
      mov %rax, 0x38(%rbp)
      VCPUOP 1, 1, $0
      mov %rax, 0x40(%rbp)
      VCPUOP 3, 1, $0
      mov %rax, 0x48(%rbp)
      movq $1, go(%rip)
      WAIT_UNTIL flag, 2
    2:
      VCPUOP 3, 1, $0
      test %rax, %rax
      jnz 2b
      VCPUOP 1, 1, $0
      mov %rax, 0x50(%rbp)
      WAIT_UNTIL flag, 3
      DONE

    ap_entry:
      lea results(%rip), %rbp
      mov %rax, 0x100(%rbp)
      mov %gs:0, %rax
      mov %rax, 0x108(%rbp)
      mov %rsp, 0x110(%rbp)
      lea ap_stack_top(%rip), %rax
      mov %rax, 0x130(%rbp)
      lea ap_ud2(%rip), %rax
      mov %rax, 0x138(%rbp)
      // is_up is read before vCPU 1 goes down
      WAIT_UNTIL go, 1
    ap_ud2:
      ud2
      movq $2, flag(%rip)
      VCPUOP 2, 1, $0
      mov %rax, 0x118(%rbp)
      movq $3, flag(%rip)
      VCPUOP 2, 1, $0
      jmp .

    ap_ud:
      mov 16(%rsp), %rax
      mov %rax, 0x120(%rbp)
      mov 24(%rsp), %rax
      mov %rax, 0x128(%rbp)
      addq $2, 16(%rsp)
      pop %rcx
      pop %r11
      pushq $0
      jmp hypercall_page + 23 * 32
    """#,
    data: #"""
      flag:
        .quad 0
      gsword:
        .quad 0x6767
      go:
        .quad 0
      """#,
    done: "PV-SMP-DONE")

  static func run(engine e: any Engine) throws {
    let capture = ParavirtMonitorTests.Capture()
    let (machine, memory) = try ParavirtTestGuest.boot(Self.guest, on: e, cpus: 2) {
      $0.consoleCapture = { capture.append($0) }
      $0.stopOnOutput = "PV-SMP-DONE"
    }
    let outcome = machine.run()
    #expect(outcome.reason == .outputMatched("PV-SMP-DONE"), "\(outcome.reason)")
    let word = { (offset: UInt64) in try ParavirtTestGuest.word(memory, offset) }
    let error = { (e: Xen.Error) in e.returnValue }
    #expect(try word(0x08) == 0, "is_up before up")
    #expect(try word(0x10) == error(.invalid), "up before initialise")
    #expect(try word(0x18) == error(.invalid), "a non-canonical RIP")
    #expect(try word(0x58) == error(.fault), "an unmapped context")
    #expect(try word(0x60) == error(.permissionDenied), "a root frame the domain does not own")
    #expect(try word(0x20) == 0, "initialise")
    #expect(try word(0x28) == error(.exists), "a second initialise")
    #expect(try word(0x30) == error(.noEntry), "vCPU 5 of 2")
    #expect(try word(0x38) == error(.invalid), "down of the last vCPU up")
    #expect(try word(0x40) == 0 && word(0x48) == 1, "up, then is_up")
    #expect(try word(0x50) == 0, "up again after down")
    // vCPU 1 ran the context: RAX, the kernel GS base, RSP; its own trap table caught the #UD.
    #expect(try word(0x100) == 0x77)
    #expect(try word(0x108) == 0x6767)
    #expect(try word(0x110) == word(0x130))
    #expect(try word(0x120) == word(0x138) && word(0x128) == 0xE030)
    #expect(try word(0x118) == 0, "down returned 0 when vCPU 1 resumed")
    #expect(machine.paravirt.isUp(0) && !machine.paravirt.isUp(1))
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func secondVCPUStartsFromItsContext(engine: String) throws {
    try Self.run(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func secondVCPUStartsFromItsContextOnKVM() throws {
    try Self.run(engine: try KVMEngine())
  }
}
