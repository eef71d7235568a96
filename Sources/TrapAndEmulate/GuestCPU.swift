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
  /// The guest's architectural state (virtual privileged state; `cpl` is the virtual CPL).
  public let state: CPUState
  /// The model's system layer over `state` and the guest's memory.
  public let system: SystemUnit
  /// The guest's memory as the model reads it; logs the emulation's writes.
  public let memory: GuestPhysicalMemory

  /// The features a deprivileged guest may enable: the model's system baseline without SMAP,
  /// which the shadow page tables do not implement.
  public static var defaultFeatures: CPUFeatures {
    var features = CPUFeatures.systemBaseline
    features.remove(.smap)
    return features
  }

  /// A virtual CPU over guest `memory` offering `features`, its state zeroed.
  public init(memory: GuestMemory, features: CPUFeatures = GuestCPU.defaultFeatures, physicalAddressBits: Int = 40) {
    self.state = CPUState()
    self.memory = GuestPhysicalMemory(memory, logWrites: true)
    self.system = SystemUnit(
      state: state, memory: self.memory, features: features, physicalAddressBits: physicalAddressBits)
    MSRFile.reset(state)
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
