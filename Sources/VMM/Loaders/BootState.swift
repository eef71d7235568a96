/// What a loader leaves behind besides the bytes it wrote into guest memory: the vCPU state to
/// start from. Engines apply it through `VirtualCPU.setRegisters`, `setSpecialRegisters` and
/// `setMSRs`, so a loader never knows which engine runs the guest.
public struct BootState: Sendable, Equatable {
  /// The CPU mode the guest starts in.
  public enum Mode: String, Sendable {
    /// Reset vector, 16-bit real mode (firmware).
    case real
    /// 32-bit protected mode, paging off (Multiboot).
    case protected32
    /// 64-bit long mode with VMM-built identity page tables (ELF64, bzImage, flat 64-bit).
    case long64
  }
  /// The start mode.
  public var mode: Mode
  /// General registers and RIP at entry.
  public var registers: Registers
  /// Segments, descriptor tables and control registers at entry.
  public var specialRegisters: SpecialRegisters
  /// MSRs to set before the first entry (EFER is in `specialRegisters`).
  public var msrs: [UInt32: UInt64]
  /// Human-readable summary for `--verbose` (what was loaded where).
  public var summary: [String]
  /// A guest-physical page of the image the VMM is to fill with hypercall stubs once the engine
  /// (and so its trap instruction) is known: a PV kernel's XEN_ELFNOTE_HYPERCALL_PAGE.
  public var hypercallPage: UInt64?

  /// A start state.
  public init(
    mode: Mode, registers: Registers, specialRegisters: SpecialRegisters, msrs: [UInt32: UInt64] = [:],
    summary: [String] = [], hypercallPage: UInt64? = nil
  ) {
    self.mode = mode
    self.registers = registers
    self.specialRegisters = specialRegisters
    self.msrs = msrs
    self.summary = summary
    self.hypercallPage = hypercallPage
  }
}

/// A loader's refusal of an image: one line for the user, exit status 2.
public struct LoaderError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What is wrong with the image, in one line.
  public var message: String
  /// A start state.
  public init(_ message: String) { self.message = message }
  /// The message.
  public var description: String { message }
}
