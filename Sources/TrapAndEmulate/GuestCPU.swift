import VMM
import X86

/// The deprivileged guest's view of its CPU: the X86 model's `CPUState` and `SystemUnit`, holding
/// what the real CPU does not (ring compression runs guest ring 0 at real ring 3): the virtual CPL,
/// the virtual RFLAGS.IF and IOPL, CR0, CR2, CR3, CR4, CR8, EFER, GDTR, IDTR, LDTR, TR, the
/// segment registers as the guest loaded them and the MSRs (SYSCALL's STAR, LSTAR, CSTAR and
/// SFMASK among them).
///
/// The model's system layer does the emulation's architectural work on this state — MOV CR checks,
/// descriptor loads from the guest's GDT, IRETQ and SYSRET frames, interrupt delivery through the
/// guest's IDT — with its MMU walking the guest's own page tables at the virtual CPL (never the
/// shadows). The monitor keeps the general registers, RIP and the arithmetic flags in step with the
/// real vCPU around each trap; the real RFLAGS always has IF set and IOPL 0.
public final class GuestCPU {
  /// The X86 model's CPU over the guest's memory, whose state this is: it executes one
  /// instruction for the monitor when the emulation needs the whole instruction set (a store to a
  /// write-protected page table), reporting exceptions instead of delivering them.
  public let core: CPU
  /// The guest's architectural state (virtual privileged state; `cpl` is the virtual CPL).
  public let state: CPUState
  /// The model's system layer over `state` and the guest's memory.
  public let system: SystemUnit
  /// The guest's memory as the model reads it; logs the emulation's writes.
  public let memory: GuestPhysicalMemory

  /// The features a deprivileged guest may enable: the interpreter's model without SMAP, which
  /// the shadow page tables do not implement.
  public static var defaultFeatures: CPUFeatures {
    var features = CPUFeatures.interpreterModel
    features.remove(.smap)
    return features
  }

  /// A virtual CPU over guest `memory` offering `features`, in the model's reset state (the
  /// monitor loads the guest's state into it).
  public init(memory: GuestMemory, features: CPUFeatures = GuestCPU.defaultFeatures) {
    self.memory = GuestPhysicalMemory(memory, logWrites: true)
    self.core = CPU(model: .host64, memory: self.memory)
    core.reportExceptions = true
    self.state = core.state
    self.system = core.system
    system.features = features
  }

  /// The guest's paging controls (what the shadow page tables shadow).
  public var pagingControl: PagingControl { system.mmu.control(state) }

  /// The shadow mode of the virtual CPL.
  public var shadowMode: ShadowMode { ShadowMode(guestCPL: state.cpl) }

  /// The virtual interrupt flag.
  public var interruptsEnabled: Bool { state.rflags & Flags.if != 0 }

  /// The virtual task-priority register (CR8).
  public var taskPriority: UInt64 { state[offset: CPUStateLayout.cr8] }
}
