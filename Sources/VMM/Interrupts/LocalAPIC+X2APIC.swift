/// The local APIC's MSR interface: IA32_APIC_BASE (1BH) with its mode changes, and in x2APIC mode
/// the registers as MSRs 800H-8FFH (SDM vol. 3, "x2APIC Register Address Space"): MSR 800H +
/// offset / 16 is the register at page offset `offset`, with these differences from the page:
/// the ID (802H) is the full 32-bit ID; the LDR (80DH) is read-only and derived from the ID
/// (cluster ID << 16 | 1 << (ID & 15)); the ICR is one 64-bit MSR (830H) with the destination in
/// bits 63-32; SELF IPI (83FH) sends a fixed interrupt to this APIC; the DFR, ICR high half,
/// arbitration and remote-read registers do not exist.
///
/// #GP (the methods return nil or false): any x2APIC MSR outside x2APIC mode, an unimplemented
/// index (LVT CMCI included: this APIC has six LVT entries), RDMSR of a write-only register (EOI,
/// SELF IPI), WRMSR of a read-only one (ID, version, PPR, LDR, ISR, TMR, IRR, current count),
/// bits 63-32 set in any register but the ICR, a non-zero write to EOI or ESR, and SELF IPI bits
/// 31-8 set.
extension LocalAPIC {
  /// The x2APIC register MSRs.
  public static let x2APICMSRs: ClosedRange<UInt32> = 0x800...0x8FF
  /// IA32_TSC_DEADLINE.
  public static let tscDeadlineMSR: UInt32 = 0x6E0

  /// The current mode (IA32_APIC_BASE's EN and EXTD).
  public var mode: APICBaseRegister.Mode { lock.locked { apicBase.mode } }

  /// RDMSR of IA32_APIC_BASE or an x2APIC register: the value, or nil for #GP.
  public func readMSR(_ index: UInt32) -> UInt64? {
    lock.locked {
      if index == APICBaseRegister.index { return apicBase.value }
      guard Self.x2APICMSRs.contains(index), apicBase.mode == .x2APIC else { return nil }
      let offset = Int(index - 0x800) << 4
      switch offset {
      case 0x300: return UInt64(icrHigh) << 32 | UInt64(icrLow & ~(1 << 12))
      case 0x90, 0xB0, 0xC0, 0xE0, 0x310, 0x3F0: return nil  // write-only, or xAPIC only
      default: return register(at: offset).map(UInt64.init)
      }
    }
  }

  /// WRMSR of IA32_APIC_BASE or an x2APIC register: false for #GP.
  public func writeMSR(_ index: UInt32, value: UInt64) -> Bool {
    if index == APICBaseRegister.index { return writeAPICBase(value) }
    guard Self.x2APICMSRs.contains(index) else { return false }
    let offset = Int(index - 0x800) << 4
    let v = UInt32(truncatingIfNeeded: value)
    var retiredLevel: UInt8?
    var local: UInt8?
    var ipi: InterProcessorInterrupt?
    let ok: Bool = lock.locked {
      guard apicBase.mode == .x2APIC else { return false }
      guard offset == 0x300 || value >> 32 == 0 else { return false }
      switch offset {
      case 0x80: tpr = v & 0xFF
      case 0xB0:
        guard v == 0 else { return false }
        retiredLevel = endOfInterrupt()
      case 0xF0: writeSpuriousVector(v)
      case 0x280:
        guard v == 0 else { return false }
        loadErrorStatus()
      case 0x300:
        icrLow = v
        icrHigh = UInt32(value >> 32)
        ipi = outgoing(
          InterProcessorInterrupt(source: id, icrLow: v, icrHigh: icrHigh, x2APICFormat: true), error: &local)
      case 0x320...0x370: writeLVT((offset - 0x320) >> 4, v)
      case 0x380: writeInitialCount(v)
      case 0x3E0: divide = v & 0xB
      case 0x3F0:
        guard v & ~0xFF == 0 else { return false }
        local = v < 16 ? recordError(ErrorStatus.sendIllegalVector) : UInt8(v)
      default: return false
      }
      return true
    }
    finish(ipi: ipi, retiredLevel: retiredLevel, local: local)
    return ok
  }

  /// WRMSR IA32_APIC_BASE: a legal mode change takes effect (disabling the APIC resets its
  /// registers); false for #GP (`APICBaseRegister.written`).
  func writeAPICBase(_ value: UInt64) -> Bool {
    lock.locked {
      guard let next = apicBase.written(value) else { return false }
      let wasDisabled = apicBase.mode == .disabled
      apicBase = next
      if next.mode == .disabled && !wasDisabled { clearRegisters() }
      return true
    }
  }
}
