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
  /// label `msg` to label `end`), `DONE` (writes `done_msg`..`done_end` and stops there) and
  /// `CONTEXT entry, stack`, which fills the `vcpu_guest_context` at %rbx for a vCPU starting at
  /// `entry` on `stack` with this kernel's root table (start_info.pt_base in %rsi minus the
  /// virtual base); it uses %rax and %rcx.
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

  /// The 64-bit word at `offset` from `results`.
  static func word(_ memory: GuestMemory, _ offset: UInt64) throws -> UInt64 {
    try memory.read(UInt64.self, at: results + offset)
  }
}
