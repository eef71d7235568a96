import Foundation
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// The deprivileged paravirtual mode end to end: a small guest kernel booted the PV way (a
/// hand-built ELF, `ParavirtBoot`) runs at ring 3, makes hypercalls, takes a #PF and a #UD
/// through its trap table, writes into the monitor's range (a #PF), enters user mode through
/// `iret`, where a hypercall gets -EPERM and SYSCALL reaches the kernel's callback, which returns
/// with `iret` (VGCF_in_syscall). Results are words at `results` (physical 0x103000).
@Suite struct ParavirtMonitorTests {
  /// The guest kernel's physical and virtual load addresses.
  static let physical: UInt64 = 0x10_0000
  static let virtualBase: UInt64 = 0xFFFF_FFFF_8000_0000
  static let results: UInt64 = physical + 0x3000

  static let guest = #"""
    .code64
    .macro HCALL n
      mov $\n, %eax
      vmcall
    .endm
    .globl _start
    _start:
      lea results(%rip), %rbp
      mov %rsi, 0x00(%rbp)
      xor %edi, %edi
      mov $(msg_end - msg), %esi
      lea msg(%rip), %rdx
      call hypercall_page + 18 * 32
      mov %rax, 0x08(%rbp)
      // trap table: #PF, #UD, terminator
      lea 0x800(%rbp), %rdi
      movb $14, 0(%rdi)
      movw $0xe033, 2(%rdi)
      lea pf_handler(%rip), %rax
      mov %rax, 8(%rdi)
      movb $6, 16(%rdi)
      movw $0xe033, 18(%rdi)
      lea ud_handler(%rip), %rax
      mov %rax, 24(%rdi)
      movb $7, 32(%rdi)
      movw $0xe033, 34(%rdi)
      lea nm_handler(%rip), %rax
      mov %rax, 40(%rdi)
      movq $0, 56(%rdi)
      HCALL 0
      mov %rax, 0x10(%rbp)
      mov $0xe02b, %edi
      lea kstack_top(%rip), %rsi
      HCALL 3
      mov %rax, 0x18(%rbp)
      xor %edi, %edi
      xor %esi, %esi
      lea syscall_entry(%rip), %rdx
      HCALL 4
      mov %rax, 0x20(%rbp)
      // GS bases: kernel 0x400(%rbp), user 0x408(%rbp)
      movq $0x4b4b, 0x400(%rbp)
      movq $0x5555, 0x408(%rbp)
      mov $2, %edi
      lea 0x400(%rbp), %rsi
      HCALL 25
      mov %rax, 0x300(%rbp)
      mov $1, %edi
      lea 0x408(%rbp), %rsi
      HCALL 25
      or %rax, 0x300(%rbp)
      mov %gs:0, %rax
      mov %rax, 0x310(%rbp)
      // lazy FPU: TS set, the next x87 instruction traps once
      mov $1, %edi
      HCALL 5
      mov %rax, 0x328(%rbp)
      fninit
      incq 0x338(%rbp)
      lea pf1(%rip), %rax
      mov %rax, 0x40(%rbp)
      lea ud1(%rip), %rax
      mov %rax, 0x48(%rbp)
      lea mon1(%rip), %rax
      mov %rax, 0x50(%rbp)
      lea after_sc(%rip), %rax
      mov %rax, 0x58(%rbp)
      movabs $0x100000000000, %rbx
    pf1:
      mov (%rbx), %rax
      mov %rax, 0x28(%rbp)
    ud1:
      ud2
      mov %rax, 0x30(%rbp)
      movabs $0xffff800000010000, %rbx
    mon1:
      movb $1, (%rbx)
      // to user mode: iret frame (ss, rsp, rflags, cs, rip), flags, then rcx, r11, rax
      lea ustack_top(%rip), %rax
      pushq $0xe02b
      push %rax
      pushq $0x202
      pushq $0xe033
      lea user_entry(%rip), %rax
      push %rax
      pushq $0
      push %rcx
      push %r11
      push %rax
      HCALL 23
      ud2

    pf_handler:
      cmpq $3, 0x38(%rbp)
      jae runaway
      mov 0x38(%rbp), %rax
      shl $6, %rax
      lea 0x100(%rbp, %rax), %rdi
      mov 16(%rsp), %rax
      mov %rax, 0(%rdi)
      mov 24(%rsp), %rax
      mov %rax, 8(%rdi)
      mov 32(%rsp), %rax
      mov %rax, 16(%rdi)
      mov 56(%rsp), %rax
      mov %rax, 24(%rdi)
      mov 40(%rsp), %rax
      mov %rax, 32(%rdi)
      incq 0x38(%rbp)
      addq $3, 24(%rsp)
      pop %rcx
      pop %r11
      add $8, %rsp
      pushq $0
      push %rcx
      push %r11
      mov $0x600d, %eax
      push %rax
      HCALL 23
      ud2

    // A fourth page fault: sched_op(shutdown, crash) instead of looping.
    runaway:
      movl $3, 0x500(%rbp)
      mov $2, %edi
      lea 0x500(%rbp), %rsi
      HCALL 29
      ud2

    ud_handler:
      mov 16(%rsp), %rax
      mov %rax, 0x200(%rbp)
      mov 24(%rsp), %rax
      mov %rax, 0x208(%rbp)
      addq $2, 16(%rsp)
      pop %rcx
      pop %r11
      pushq $0
      mov $0xbad, %eax
      jmp hypercall_page + 23 * 32

    nm_handler:
      incq 0x330(%rbp)
      mov 24(%rsp), %rax
      mov %rax, 0x340(%rbp)
      pop %rcx
      pop %r11
      pushq $0
      jmp hypercall_page + 23 * 32

    user_entry:
      lea results(%rip), %rbp
      mov %rsp, 0x60(%rbp)
      mov $18, %eax
      xor %edi, %edi
      mov $3, %esi
      lea msg(%rip), %rdx
      vmcall
      mov %rax, 0x68(%rbp)
      mov %gs:0, %rax
      mov %rax, 0x318(%rbp)
      movabs $0x8000000000, %rbx
      mov (%rbx), %rax
      mov %rax, 0x348(%rbp)
      mov $0x1234, %eax
      syscall
    after_sc:
      mov %rax, 0x70(%rbp)
      mov %rcx, 0x78(%rbp)
      mov $2, %eax
      syscall
      jmp .

    syscall_entry:
      cmp $2, %rax
      je done
      mov %rax, 0x280(%rbp)
      mov 0(%rsp), %rbx
      mov %rbx, 0x288(%rbp)
      mov 16(%rsp), %rbx
      mov %rbx, 0x290(%rbp)
      mov 24(%rsp), %rbx
      mov %rbx, 0x298(%rbp)
      mov 40(%rsp), %rbx
      mov %rbx, 0x2a0(%rbp)
      mov %rsp, 0x2a8(%rbp)
      mov %gs:0, %rbx
      mov %rbx, 0x320(%rbp)
      lea sc_pf(%rip), %rbx
      mov %rbx, 0x350(%rbp)
      movabs $0x8000000000, %rbx
    sc_pf:
      mov (%rbx), %rax
      mov 0x280(%rbp), %rax
      pop %rcx
      pop %r11
      pushq $0x100
      push %rcx
      push %r11
      mov $0x5678, %eax
      push %rax
      HCALL 23
      ud2
    done:
      mov $18, %eax
      xor %edi, %edi
      mov $(done_end - done_msg), %esi
      lea done_msg(%rip), %rdx
      vmcall
      jmp .

    msg:
      .ascii "pv: hello from ring 3\n"
    msg_end:
    done_msg:
      .ascii "PV-DONE\n"
    done_end:
      .org 0x2000
    hypercall_page:
      .fill 0x1000, 1, 0xcc
    results:
      .fill 0x1000, 1, 0
      .fill 0x1000, 1, 0
    kstack_top:
      .fill 0x1000, 1, 0
    ustack_top:
    """#

  /// A 64-bit ET_EXEC ELF with one PT_LOAD of `code` at `virtual`/`physical`, entry `entry`
  /// (default: the segment's start), and a PT_NOTE holding `notes` ("Xen" notes, 8-byte values).
  static func elf(
    _ code: [UInt8], virtual: UInt64, physical: UInt64, machine: UInt16 = 62, entry: UInt64? = nil,
    notes: [(type: UInt32, value: UInt64)] = []
  ) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 0x1000)
    func put(_ v: UInt64, _ at: Int, _ size: Int) {
      for i in 0..<size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
    b.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
    put(2, 16, 2)
    put(UInt64(machine), 18, 2)
    put(1, 20, 4)
    put(entry ?? virtual, 24, 8)
    put(64, 32, 8)
    put(64, 52, 2)
    put(56, 54, 2)
    put(notes.isEmpty ? 1 : 2, 56, 2)
    put(64, 58, 2)
    // Program headers: the PT_LOAD, then the PT_NOTE (notes at 0x200, 24 bytes each).
    put(1, 64, 4)
    put(7, 68, 4)
    put(0x1000, 72, 8)
    put(virtual, 80, 8)
    put(physical, 88, 8)
    put(UInt64(code.count), 96, 8)
    put(UInt64(code.count), 104, 8)
    put(0x1000, 112, 8)
    put(4, 120, 4)
    put(0x200, 128, 8)
    put(UInt64(notes.count * 24), 152, 8)
    for (i, note) in notes.enumerated() {
      let at = 0x200 + 24 * i
      put(4, at, 4)
      put(8, at + 4, 4)
      put(UInt64(note.type), at + 8, 4)
      b.replaceSubrange(at + 12..<at + 16, with: [0x58, 0x65, 0x6E, 0])
      put(note.value, at + 16, 8)
    }
    return b + code
  }

  final class Capture: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    func append(_ b: [UInt8]) {
      lock.lock()
      bytes += b
      lock.unlock()
    }
    var text: String {
      lock.lock()
      defer { lock.unlock() }
      return String(decoding: bytes, as: UTF8.self)
    }
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func deprivilegedKernelTrapsHypercallsAndUserMode(engine: String) throws {
    try Self.runDeprivilegedKernel(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  /// The same on kvm: the guest traps with kvm's `out %eax, $0xE4`, which the monitor's TSS lets
  /// through at ring 3, and the hypercall page holds kvm's stubs.
  /// The monitor takes SYSCALL natively where the host probe says SYSCALL from ring 3 reaches
  /// ring 0, and from the exception it raises where it does not (this nested host).
  @Test(.requires(.guestToolchain, .kvm)) func deprivilegedKernelOnKVM() throws {
    let engine = try KVMEngine()
    let machine = try Self.runDeprivilegedKernel(engine: engine)
    let native = KVMSyscallProbe.syscallEntersRing0(system: engine.system)
    #expect(machine.paravirt.monitor?.emulatesSyscall == !native)
    #expect((machine.paravirt.monitor?.emulatedSyscalls ?? 0) == (native ? 0 : 2))
  }

  /// The same with SYSCALL taken from its #UD (EFER.SCE clear, `ParavirtSyscallEntry.emulated`,
  /// what a host with kvm's SYSCALL quirk gets): every check passes as with the native path, and
  /// the monitor counts the SYSCALLs it emulated (the guest's two; its UD2 stays a #UD).
  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func syscallEmulatedFromInvalidOpcode(engine: String) throws {
    let machine = try Self.runDeprivilegedKernel(
      engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine(), syscall: .emulated)
    #expect(machine.paravirt.monitor?.emulatedSyscalls == 2)
  }

  @discardableResult
  static func runDeprivilegedKernel(engine e: any Engine, syscall: ParavirtSyscallEntry? = nil) throws -> Machine {
    let trap = e is KVMEngine ? "out %eax, $0xe4" : "vmcall"
    let code = try InlineGuestAssembler.assemble(Self.guest.replacingOccurrences(of: "vmcall", with: trap))
    let start = Self.virtualBase + Self.physical
    // e_entry points at the hypercall page: XEN_ELFNOTE_ENTRY (1) must win over it.
    let image = Self.elf(
      code, virtual: start, physical: Self.physical, entry: start + 0x2000,
      notes: [(1, start), (2, start + 0x2000)])
    let memory = try GuestMemory(ramSize: 64 << 20)
    let boot = try ParavirtBoot.load(image: image, into: memory, commandLine: "console=hvc0")
    let capture = Capture()
    let config = MachineConfiguration(
      consoleCapture: { capture.append($0) }, timeoutSeconds: 120, stopOnOutput: "PV-DONE")
    let machine = try Machine(memory: memory, boot: boot, engine: e, configuration: config)
    try machine.paravirt.startDeprivileged(boot: boot, syscall: syscall)
    // Guest user mode's root table (new_user_baseptr): the kernel's, plus slot 1 mapping a page
    // that holds "user" (the kernel's table has nothing there).
    let userRoot: UInt64 = 0x200_0000
    try memory.write(userRoot, bytes: try memory.read(boot.specialRegisters.cr3, count: 4096))
    for (level, table) in [userRoot, userRoot + 0x1000, userRoot + 0x2000, userRoot + 0x3000].enumerated() {
      if level > 0 { try memory.write(table, bytes: [UInt8](repeating: 0, count: 4096)) }
      try memory.write(table + 0x1000 | 7, at: table + (level == 0 ? 8 : 0))
    }
    try memory.write(UInt64(0x7265_7375), at: userRoot + 0x4000)
    try machine.paravirt.prepareRootTable(frame: userRoot >> 12)
    machine.paravirt.vcpus[0].userBasePointer = userRoot
    // The image's hypercall page holds this engine's stubs (`mov $18, %eax` then the trap).
    let stub = try memory.read(Self.physical + 0x2000 + 18 * 32, count: 5 + machine.paravirt.trapInstruction.count)
    #expect(Array(stub) == [0xB8, 18, 0, 0, 0] + machine.paravirt.trapInstruction)
    let outcome = machine.run()
    let word = { (offset: UInt64) in try memory.read(UInt64.self, at: Self.results + offset) }
    #expect(capture.text.hasPrefix("pv: hello from ring 3\n"))
    // start_info: magic, command line.
    let startInfo = try word(0x00) &- Self.virtualBase
    #expect(String(decoding: try memory.read(startInfo, count: 14), as: UTF8.self) == "xen-3.0-x86_64")
    #expect(String(decoding: try memory.read(startInfo + 128, count: 12), as: UTF8.self) == "console=hvc0")
    #expect(try word(0x08) == 0 && word(0x10) == 0 && word(0x18) == 0 && word(0x20) == 0)
    // #PF on an unmapped page: error code U (4), frame CS 0xE030 (kernel mode), SS 0xE02B.
    #expect(try word(0x100) == 4 && word(0x108) == word(0x40) && word(0x110) == 0xE030 && word(0x118) == 0xE02B)
    #expect(try word(0x28) == 0x600D, "iret restored RAX")
    // #UD: frame without error code, RIP at the UD2.
    #expect(try word(0x200) == word(0x48) && word(0x208) == 0xE030)
    #expect(try word(0x30) == 0xBAD)
    // The store into the monitor's range faulted (write, user) at its instruction.
    #expect(try word(0x140) & 6 == 6 && word(0x148) == word(0x50))
    // User mode: the hypercall got -EPERM (on kvm through the port the TSS opens to ring 3).
    #expect(try word(0x68) == Xen.Error.permissionDenied.returnValue)
    // GS bases swap with the mode.
    #expect(try word(0x300) == 0 && word(0x310) == 0x4B4B && word(0x318) == 0x5555)
    #expect(try word(0x328) == 0, "fpu_taskswitch")
    // The user root table was live in user mode.
    #expect(try word(0x348) == 0x7265_7375)
    let rest = { () throws -> Void in
      #expect(outcome.reason == .outputMatched("PV-DONE"), "\(outcome.reason)")
      #expect(try word(0x38) == 3, "three page faults")
      // The store into the monitor's range: present, write, user.
      #expect(try word(0x140) == 7)
      // CR2 of the last fault (the kernel's read in the SYSCALL callback) in vcpu_info.arch.cr2.
      let sharedInfo = try #require(machine.paravirt.monitor?.sharedInfoFrame) << 12
      #expect(try memory.read(UInt64.self, at: sharedInfo + 16) == 0x80_0000_0000)
      #expect(machine.paravirt.monitor?.vcpus[0].cr2 == 0x80_0000_0000)
      // SYSCALL reached the callback with a user frame.
      #expect(try word(0x280) == 0x1234 && word(0x290) == word(0x58) && word(0x288) == word(0x58))
      #expect(try word(0x298) == 0xE033)
      #expect(try word(0x2A0) == word(0x60), "the frame's RSP is the user stack")
      let kernelStackTop = Self.virtualBase + Self.physical + 0x5000
      #expect(try word(0x2A8) == kernelStackTop - 56, "on the kernel stack from stack_switch")
      // iret with VGCF_in_syscall: RAX from the context, RCX = the return address.
      #expect(try word(0x70) == 0x5678 && word(0x78) == word(0x58))
      #expect(machine.paravirt.vcpus[0].inKernelMode)
      // The kernel's GS base is its own again in the SYSCALL callback.
      #expect(try word(0x320) == 0x4B4B)
      // fpu_taskswitch(1): one #NM (frame CS 0xE030), then FNINIT ran with TS cleared.
      #expect(try word(0x330) == 1)
      #expect(try word(0x338) == 1)
      #expect(try word(0x340) == 0xE030)
      // The kernel's root table again in the SYSCALL callback.
      #expect(try word(0x180) == 4 && word(0x188) == word(0x350))
    }
    guard e is KVMEngine else {
      try rest()
      return machine
    }
    // This nested host runs guest ring 3 under its own paging and emulates ring 0: a ring-3
    // access to a supervisor page faults with P clear, and CR0.TS raises no #NM at ring 3. On
    // VT-x/AMD-V these pass as on the others. (Its SYSCALL quirk is served: `syscallArrival`.)
    withKnownIssue("this host's KVM: #PF.P on supervisor pages, CR0.TS", isIntermittent: true) {
      try rest()
    }
    return machine
  }

  @Test func badImagesGetOneLineErrors() throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let code = [UInt8](repeating: 0x90, count: 16)
    let cases: [([UInt8], String)] = [
      ([1, 2, 3], "ELF"),
      (Self.elf(code, virtual: 0x40_0000, physical: 0x40_0000, machine: 3), "64-bit x86-64"),
      (Self.elf(code, virtual: 0xFFFF_8000_0010_0000, physical: 0x10_0000), "monitor"),
      (Self.elf(code, virtual: 0x1_0000_0000, physical: 0x1_0000_0000), "does not fit"),
    ]
    for (image, fragment) in cases {
      #expect(throws: LoaderError.self) { try ParavirtBoot.load(image: image, into: memory, commandLine: "") }
      do {
        _ = try ParavirtBoot.load(image: image, into: memory, commandLine: "")
      } catch {
        #expect(!error.message.contains("\n") && error.message.contains(fragment), "\(error.message)")
      }
    }
    let long = String(repeating: "x", count: 1024)
    #expect(throws: LoaderError.self) {
      try ParavirtBoot.load(
        image: Self.elf(code, virtual: 0x40_0000, physical: 0x40_0000), into: memory, commandLine: long)
    }
  }
}
