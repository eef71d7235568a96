import KVMEngine

@testable import VMM

/// A hand-written deprivileged guest booted as `trivisor run --pv` boots a PV kernel: its 64-bit
/// assembly (hypercalls written as `vmcall`; on kvm they become kvm's `out %eax, $0xe4`) is
/// assembled, packed into an ELF at `ParavirtMonitorTests`' addresses with XEN_ELFNOTE_ENTRY at
/// its start and XEN_ELFNOTE_HYPERCALL_PAGE at offset 0x2000, loaded by `ParavirtBoot` and put
/// under the monitor. The guest keeps its results at offset 0x3000 (`results`).
enum ParavirtTestGuest {
  /// What the guests' assembly starts with: `.code64` and the macros `HCALL n` (hypercall n),
  /// `VCPUOP cmd, vcpu, arg` (`vcpu_op`), `WRITE msg, end` (`console_io` write of the bytes from
  /// label `msg` to label `end`), `DONE` (writes `done_msg`..`done_end` and stops there),
  /// `CONTEXT entry, stack`, which fills the `vcpu_guest_context` at %rbx for a vCPU starting at
  /// `entry` on `stack` with this kernel's root table (start_info.pt_base in %rsi minus the
  /// virtual base; it uses %rax and %rcx), `START_VCPU1` (vCPU 1 initialised from `ctx` to start
  /// at `ap_entry` on `ap_stack_top`, then brought up: RAX is `up`'s result) and
  /// `MMU_UPDATE value` (one `mmu_update` writing the quad at label `value` into the entry whose
  /// address is at `pte_ptr`, through the 16-byte `req`).
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
    .macro START_VCPU1
      lea ctx(%rip), %rbx
      CONTEXT ap_entry, ap_stack_top
      VCPUOP 0, 1, %rbx
      VCPUOP 1, 1, $0
    .endm
    .macro MMU_UPDATE value
      mov pte_ptr(%rip), %rax
      mov %rax, req(%rip)
      mov \value(%rip), %rax
      mov %rax, req+8(%rip)
      lea req(%rip), %rdi
      mov $1, %esi
      xor %edx, %edx
      mov $0x7ff0, %r10d
      HCALL 1
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

  /// The 64-bit word at `offset` from `results`.
  static func word(_ memory: GuestMemory, _ offset: UInt64) throws -> UInt64 {
    try memory.read(UInt64.self, at: results + offset)
  }
}
