import KVMEngine

@testable import VMM

/// A hand-written deprivileged guest booted as `trivisor run --pv` boots a PV kernel: its 64-bit
/// assembly (hypercalls written as `vmcall`; on kvm they become kvm's `out %eax, $0xe4`) is
/// assembled, packed into an ELF at `ParavirtMonitorTests`' addresses with XEN_ELFNOTE_ENTRY at
/// its start and XEN_ELFNOTE_HYPERCALL_PAGE at offset 0x2000, loaded by `ParavirtBoot` and put
/// under the monitor. The guest keeps its results at offset 0x3000 (`results`); `source` gives
/// the guests their common image layout.
enum ParavirtTestGuest {
  /// What the guests' assembly starts with: `.code64` and the macros `HCALL n` (hypercall n),
  /// `VCPUOP cmd, vcpu, arg` (`vcpu_op`), `WRITE msg, end` (`console_io` write of the bytes from
  /// label `msg` to label `end`), `DONE` (writes `done_msg`..`done_end` and stops there),
  /// `WAIT_UNTIL var, value` (spins with PAUSE until the quad at label `var` is `value`),
  /// `CONTEXT entry, stack`, which fills the `vcpu_guest_context` at %rbx for a vCPU starting at
  /// `entry` on `stack` with this kernel's root table (start_info.pt_base in %rsi minus the
  /// virtual base; it uses %rax and %rcx), `START_VCPU1` (vCPU 1 initialised from `ctx` to start
  /// at `ap_entry` on `ap_stack_top`, then brought up: RAX is `up`'s result), `MMU_REQUEST value`
  /// (fills the 16-byte `req`: the entry whose address is at `pte_ptr`, the quad at label `value`),
  /// `MMU_UPDATE value` (`req` filled so and sent as one `mmu_update`), `MMUEXT_OP cmd, arg1, arg2`
  /// (fills the 24-byte `op`; the arguments are MOV sources, 0 if left out) and `MMUEXT cmd, arg1,
  /// arg2` (`op` filled so and sent as one `mmuext_op`). The labels named are `source`'s.
  static let prelude = #"""
    .code64
    .macro HCALL n
      mov $\n, %eax
      vmcall
    .endm
    .macro VCPUOP cmd, vcpu, arg
      mov $\cmd, %edi
      mov $\vcpu, %esi
      mov \arg, %rdx
      HCALL 24
    .endm
    .macro WRITE msg, end
      mov $18, %eax
      xor %edi, %edi
      mov $(\end - \msg), %esi
      lea \msg(%rip), %rdx
      vmcall
    .endm
    .macro WAIT_UNTIL var, value
    .Lwait\@:
      pause
      cmpq $\value, \var(%rip)
      jne .Lwait\@
    .endm
    .macro START_VCPU1
      lea ctx(%rip), %rbx
      CONTEXT ap_entry, ap_stack_top
      VCPUOP 0, 1, %rbx
      VCPUOP 1, 1, $0
    .endm
    .macro ONE_REQUEST nr, buffer
      lea \buffer(%rip), %rdi
      mov $1, %esi
      xor %edx, %edx
      mov $0x7ff0, %r10d
      HCALL \nr
    .endm
    .macro MMU_REQUEST value
      mov pte_ptr(%rip), %rax
      mov %rax, req(%rip)
      mov \value(%rip), %rax
      mov %rax, req+8(%rip)
    .endm
    .macro MMU_UPDATE value
      MMU_REQUEST \value
      ONE_REQUEST 1, req
    .endm
    .macro MMUEXT_OP cmd, arg1=$0, arg2=$0
      movl $\cmd, op(%rip)
      mov \arg1, %rax
      mov %rax, op+8(%rip)
      mov \arg2, %rax
      mov %rax, op+16(%rip)
    .endm
    .macro MMUEXT cmd, arg1=$0, arg2=$0
      MMUEXT_OP \cmd, \arg1, \arg2
      ONE_REQUEST 26, op
    .endm
    .macro DONE
      WRITE done_msg, done_end
      jmp .
    .endm
    .macro CONTEXT entry, stack
      lea \entry(%rip), %rax
      mov %rax, 520+128(%rbx)
      lea \stack(%rip), %rax
      mov %rax, 520+152(%rbx)
      mov 88(%rsi), %rax
      movabs $0xffffffff80000000, %rcx
      sub %rcx, %rax
      mov %rax, 4984+24(%rbx)
    .endm

    """#

  /// A guest's whole source: `prelude`, then `code` at `_start` (entered with %rbp at
  /// `results`), then `done_msg` (`done` and a newline, for `DONE`) and the image's pages: the
  /// hypercall page at 0x2000; `results` at 0x3000 (0x800 bytes); the window slots at 0x3800
  /// (`pte_ptr`, `val_a`, `val_b`, `mfn`, which `prepareWindow` fills; then `req` and `op`); the
  /// guest's own `data` at 0x3900 (`ownData`); `ctx` (a `vcpu_guest_context`) at 0x4000 and vCPU
  /// 1's stack below `ap_stack_top` (0x7000); the window page `window` at 0x7000 (its first quad
  /// `VALUE_A`, 0xA0A0A0A0, Swift's `valueA`) and `frame_b` at 0x8000 (`VALUE_B`, 0xB0B0B0B0).
  static func source(_ code: String, data: String = "", done: String) -> String {
    prelude + #"""
      .set VALUE_A, 0xA0A0A0A0
      .set VALUE_B, 0xB0B0B0B0
      .globl _start
      _start:
        lea results(%rip), %rbp
      """# + "\n" + code + "\n" + #"""
        done_msg:
          .ascii "\#(done)\n"
        done_end:
          .org 0x2000
        hypercall_page:
          .fill 0x1000, 1, 0xcc
        results:
          .fill 0x800, 1, 0
        pte_ptr:
          .quad 0
        val_a:
          .quad 0
        val_b:
          .quad 0
        mfn:
          .quad 0
        req:
          .fill 16, 1, 0
        op:
          .fill 24, 1, 0
          .org 0x3900
        """# + "\n" + data + "\n" + #"""
          .org 0x4000
        ctx:
          .fill 0x2000, 1, 0
          .fill 0x1000, 1, 0
        ap_stack_top:
        window:
          .quad VALUE_A
          .fill 0xff8, 1, 0
        frame_b:
          .quad VALUE_B
          .fill 0xff8, 1, 0
        """#
  }

  /// The offset from `results` of the guest's own `data` in `source`.
  static let ownData: UInt64 = 0x900

  /// The first quads of `source`'s window page (A) and of `frame_b` (B).
  static let (valueA, valueB): (UInt64, UInt64) = (0xA0A0_A0A0, 0xB0B0_B0B0)

  /// The guest-physical frames of `source`'s window page and of `frame_b`.
  static let (windowFrame, frameB) = (ParavirtMonitorTests.physical + 0x7000, ParavirtMonitorTests.physical + 0x8000)

  /// The guest-physical address of offset 0x3000 of the image, where the guests keep results.
  static let results = ParavirtMonitorTests.physical + 0x3000

  /// The machine (deprivileged mode started, not run yet) and its memory, for `source` on
  /// `engine` with `cpus` vCPUs; `configure` adjusts the configuration first.
  static func boot(
    _ source: String, on engine: any Engine, cpus: Int = 1, configure: (inout MachineConfiguration) -> Void = { _ in }
  ) throws -> (machine: Machine, memory: GuestMemory) {
    let trap = engine is KVMEngine ? "out %eax, $0xe4" : "vmcall"
    let code = try InlineGuestAssembler.assemble(source.replacingOccurrences(of: "vmcall", with: trap))
    let start = ParavirtMonitorTests.virtualBase + ParavirtMonitorTests.physical
    let image = ParavirtMonitorTests.elf(
      code, virtual: start, physical: ParavirtMonitorTests.physical, notes: [(1, start), (2, start + 0x2000)])
    let memory = try GuestMemory(ramSize: 64 << 20)
    let boot = try ParavirtBoot.load(image: image, into: memory, commandLine: "", cpus: cpus)
    var configuration = MachineConfiguration(timeoutSeconds: 120)
    configuration.cpuCount = cpus
    configure(&configuration)
    let machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    try machine.paravirt.startDeprivileged(boot: boot)
    return (machine, memory)
  }

  /// The guest-physical address of the L1 entry mapping the image's page at `offset` (the
  /// guests' window page is at 0x7000), through vCPU 0's boot tables, and the entry's value.
  static func leafEntry(ofImageOffset offset: UInt64, _ machine: Machine, _ memory: GuestMemory) throws -> (
    address: UInt64, value: UInt64
  ) {
    let linear = ParavirtMonitorTests.virtualBase + ParavirtMonitorTests.physical + offset
    var table = try machine.runners[0].vcpu.specialRegisters().cr3 & ~0xFFF
    for shift in [39, 30, 21] as [UInt64] {
      table = try memory.read(UInt64.self, at: table + ((linear >> shift) & 0x1FF) * 8) & 0x000F_FFFF_FFFF_F000
    }
    let address = table + ((linear >> 12) & 0x1FF) * 8
    return (address, try memory.read(UInt64.self, at: address))
  }

  /// Fills `source`'s window slots for remapping the window page and returns its L1 entry's
  /// value: `pte_ptr` is the entry's address, `val_a` its value (the window's own frame), `val_b`
  /// the same entry on `frame_b`, `mfn` the window's frame number.
  static func prepareWindow(_ machine: Machine, _ memory: GuestMemory) throws -> UInt64 {
    let (entry, original) = try leafEntry(ofImageOffset: windowFrame - ParavirtMonitorTests.physical, machine, memory)
    let slots = results + 0x800
    try memory.write(entry, at: slots)
    try memory.write(original, at: slots + 8)
    try memory.write(frameB | (original & 0xFFF), at: slots + 16)
    try memory.write(windowFrame >> 12, at: slots + 24)
    return original
  }

  /// The 64-bit word at `offset` from `results`.
  static func word(_ memory: GuestMemory, _ offset: UInt64) throws -> UInt64 {
    try memory.read(UInt64.self, at: results + offset)
  }
}
