import Interpreter
import KVMEngine
import VMM

/// Small guests for the local APIC tests, assembled from source at test time
/// (`InlineGuestAssembler`): 64-bit ring-0 code for the bootstrap processor at 0x10000 (started by
/// `SmallGuestBoot`, with an IDT at 0xF000 the `GATE` macro fills; `OUT` and `PIC_INIT` for ports), and optionally real-mode code
/// for application processors at 0x20000 (start-up vector 0x20, CS 0x2000). Results go to
/// 0x9000-0x9FFF; an AP's real-mode stack is 0xE000 - 0x200 * its APIC ID. The guest ends with
/// `EXIT` (isa-debug-exit, value 0).
enum APICTestGuest {
  /// Macros and the entry code every guest starts with (`main` is the guest's own).
  static let prelude = #"""
    .set IDT, 0xF000
    # An interrupt gate to \handler in the kernel code segment; type 0xEE00 lets ring 3 use it.
    .macro GATE vec, handler, type=0x8E00
      movl $\handler, %eax
      movw %ax, IDT + \vec * 16
      movw $0x08, IDT + \vec * 16 + 2
      movw $\type, IDT + \vec * 16 + 4
      shrl $16, %eax
      movw %ax, IDT + \vec * 16 + 6
      movq $0, IDT + \vec * 16 + 8
    .endm
    .macro EXIT
      movb $0, %al
      outb %al, $0xF4
    .Lhalt\@:
      hlt
      jmp .Lhalt\@
    .endm
    .macro OUT port, value
      movw $\port, %dx
      movb $\value, %al
      outb %al, %dx
    .endm
    .macro PIC_INIT master_mask, slave_mask, master_base=0x20, slave_base=0x28
      # The 8259 pair: edge-triggered, cascaded on IRQ 2, vectors from the bases (0x20 and 0x28
      # unless given), 8086 mode.
      OUT 0x20, 0x11
      OUT 0x21, \master_base
      OUT 0x21, 0x04
      OUT 0x21, 0x01
      OUT 0xA0, 0x11
      OUT 0xA1, \slave_base
      OUT 0xA1, 0x02
      OUT 0xA1, 0x01
      OUT 0x21, \master_mask
      OUT 0xA1, \slave_mask
    .endm
    .macro WRMSR64
      movq %rax, %rdx
      shrq $32, %rdx
      wrmsr
    .endm
    .macro RDMSR64
      rdmsr
      shlq $32, %rdx
      orq %rdx, %rax
    .endm
    .macro RDTSC64
      rdtsc
      shlq $32, %rdx
      orq %rdx, %rax
    .endm
    .macro X2APIC_EOI_IRETQ
      pushq %rax
      pushq %rcx
      pushq %rdx
      movl $0x80B, %ecx
      xorl %eax, %eax
      xorl %edx, %edx
      wrmsr
      popq %rdx
      popq %rcx
      popq %rax
      iretq
    .endm
    .macro X2APIC_ON
      movl $0x1B, %ecx
      rdmsr
      orl $0xC00, %eax
      wrmsr
    .endm
    .text
    .code64
    .globl _start
    _start:
      lidt idtr(%rip)
      jmp main
    idtr:
      .word 0xFFF
      .quad IDT
    """#

  /// Real-mode entry of an application processor: DS = SS = 0, its own stack, then `ap_main`.
  static let applicationProcessorEntry = #"""
    .org 0x10000
    .code16
    ap_start:
      cli
      xorw %ax, %ax
      movw %ax, %ds
      movw %ax, %ss
      movl $1, %eax
      cpuid
      shrl $24, %ebx
      movw %bx, %ax
      shlw $9, %ax
      movw $0xE000, %sp
      subw %ax, %sp
      jmp ap_main
    """#

  /// The outcome of a run and the guest's memory.
  struct Run {
    let outcome: RunOutcome
    let memory: GuestMemory
    let machine: Machine
    func u32(_ address: UInt64) throws -> UInt32 { try memory.read(UInt32.self, at: address) }
    func u64(_ address: UInt64) throws -> UInt64 { try memory.read(UInt64.self, at: address) }
  }

  /// Assembles `prelude + source`, runs it on `engine` with `cpus` vCPUs (the VMM's interrupt
  /// controllers unless `irqchip` says otherwise) after storing `presets` (32-bit words) and
  /// letting `prepare` add devices.
  static func run(
    _ source: String, cpus: Int = 1, on engine: any Engine, irqchip: InterruptControllerPlacement = .user,
    presets: [UInt64: UInt32] = [:], prepare: (Machine) throws -> Void = { _ in }
  ) throws -> Run {
    let image = try InlineGuestAssembler.assemble(prelude + "\n" + source)
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: image)
    for (address, value) in presets { try memory.write(value, at: address) }
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    var configuration = MachineConfiguration(
      engineOptions: EngineOptions(interruptController: irqchip), timeoutSeconds: 120)
    configuration.cpuCount = cpus
    configuration.firmwareConfigurationDevice = false  // guests' trigger ports use 0x510
    let machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    try prepare(machine)
    let outcome = machine.run()
    return Run(outcome: outcome, memory: memory, machine: machine)
  }
}

/// A port that calls `action` when the guest writes it (a test's lever on the machine).
final class GuestTriggerPort: PortIODevice {
  let action: (UInt32) -> Void
  init(_ action: @escaping (UInt32) -> Void) { self.action = action }
  func read(port: UInt16, size: Int) -> UInt32 { 0 }
  func write(port: UInt16, size: Int, value: UInt32) { action(value) }
}
