/// One vCPU's local APIC: fixed interrupts with IRR/ISR and task priority (the TPR, which is the
/// vCPU's CR8: `taskPriorityClass`), EOI, NMIs, the LVT timer (one-shot, periodic and
/// TSC-deadline), LINT1, the error status register with its error interrupt, and inter-processor
/// interrupts through the ICR, which it hands to the machine's `InterruptRouter`. Its mode follows IA32_APIC_BASE (`APICBaseRegister`): xAPIC (the register
/// page every vCPU sees at `LocalAPIC.base`; each sees its own: the runner routes that page to its
/// vCPU's APIC before the MMIO bus), x2APIC (the same registers as MSRs 800H-8FFH,
/// `LocalAPIC+X2APIC.swift`; the page then no longer responds) or disabled (the page does not
/// respond, nothing is accepted, the 8259 and the NMI wire reach the BSP directly).
///
/// Registers (offsets in the page; the x2APIC MSR is 800H + offset / 16): ID 0x20, version 0x30
/// (0x50014: version 0x14, six LVT entries), TPR 0x80, PPR 0xA0, EOI 0xB0, LDR 0xD0, DFR 0xE0,
/// SVR 0xF0, ISR 0x100-0x170, TMR 0x180-0x1F0, IRR 0x200-0x270, ESR 0x280, ICR 0x300/0x310, LVT
/// timer 0x320, thermal 0x330, performance 0x340, LINT0 0x350, LINT1 0x360, error 0x370, initial
/// count 0x380, current count 0x390, divide configuration 0x3E0. Other offsets read 0, ignore
/// writes and record an illegal register address in the ESR.
///
/// The timer (`LocalAPIC+Timer.swift`) counts guest nanoseconds (a 1 GHz bus clock, as the
/// interpreter's TSC) divided by the divide configuration. In TSC-deadline mode (LVT timer bits
/// 18:17 = 10b) it fires once when the guest TSC reaches IA32_TSC_DEADLINE; the runner converts
/// that TSC value to guest time with the vCPU's own TSC (`armTSCDeadline`). A write to the LVT
/// timer that changes its mode disarms the timer.
///
/// LINT1 (`signalLINT1`, the legacy NMI wire) delivers as its LVT entry says (NMI or fixed); while
/// the APIC is disabled or software-disabled the wire reaches the bootstrap processor's NMI input
/// directly. NMIs from any source wait in a one-deep latch for the vCPU (`takeNMI`).
///
/// The ESR collects errors (send accept error for an IPI no APIC accepted, send illegal vector,
/// receive illegal vector, illegal register address) and shows them after the next ESR write;
/// each new error raises the LVT error interrupt unless it is masked.
///
/// Lowest-priority arbitration compares `arbitrationPriority` across the targets
/// (`Machine.lowestPriorityTarget`), in x2APIC mode too (where some processors refuse such IPIs
/// with a redirectable-IPI error).
///
/// Not modelled: SMIs (accepted and dropped), the APIC base MSR's relocation of the page (the value is kept, the page stays at
/// 0xFEE00000), the thermal and performance-counter interrupts, and directed EOI.
///
/// Threading: every method takes the APIC's own lock; the runner of its vCPU calls `read`,
/// `write`, the MSR methods, `acknowledge` and `advance`; other runners reach it through the
/// router (`accept`, `acceptNMI`, `isAddressed`).
public final class LocalAPIC: MMIODevice, TimedDevice, @unchecked Sendable {
  /// Where the register page is (IA32_APIC_BASE's reset value).
  public static let base: UInt64 = 0xFEE0_0000
  /// The APIC ID (the vCPU's index).
  public let id: UInt8
  let lock = NSLockLike()
  let clock: any GuestClock
  /// Sends an IPI written to the ICR (the router); called without the APIC's lock held.
  var send: ((InterProcessorInterrupt) -> Void)?
  /// Called when a new interrupt or NMI became pending here (kicks the vCPU's runner).
  var notify: (() -> Void)?
  /// Called after an EOI retires a level-triggered vector (the I/O APIC clears remote IRR).
  var levelEOI: ((UInt8) -> Void)?

  /// ESR bits.
  enum ErrorStatus {
    static let sendAccept: UInt32 = 1 << 2
    static let sendIllegalVector: UInt32 = 1 << 5
    static let receiveIllegalVector: UInt32 = 1 << 6
    static let illegalRegisterAddress: UInt32 = 1 << 7
  }
  /// LVT indices.
  enum LVT {
    static let timer = 0
    static let lint0 = 3
    static let lint1 = 4
    static let error = 5
    static let masked: UInt32 = 1 << 16
  }

  var apicBase: APICBaseRegister
  var tpr: UInt32 = 0
  var ldr: UInt32 = 0
  var dfr: UInt32 = 0xFFFF_FFFF
  var svr: UInt32 = 0xFF
  var isr = [UInt32](repeating: 0, count: 8)
  var tmr = [UInt32](repeating: 0, count: 8)
  var irr = [UInt32](repeating: 0, count: 8)
  /// The ESR as the guest reads it (loaded by the last ESR write).
  var errorStatus: UInt32 = 0
  /// Errors since the last ESR write.
  var newErrors: UInt32 = 0
  var icrLow: UInt32 = 0
  var icrHigh: UInt32 = 0
  /// LVT timer, thermal, performance, LINT0, LINT1, error: masked at reset.
  var lvt = [UInt32](repeating: LVT.masked, count: 6)
  var initialCount: UInt32 = 0
  var divide: UInt32 = 0
  /// Guest time the current count was last loaded.
  var timerStart: UInt64 = 0
  /// IA32_TSC_DEADLINE as armed (guest TSC; 0: disarmed), and the guest time it falls due.
  var tscDeadline: UInt64 = 0
  var tscDeadlineDue: UInt64 = 0
  /// An NMI waits for the vCPU.
  var nmiPending = false

  /// The APIC of vCPU `id`, timing with `clock`, in its reset state; vCPU 0 is the bootstrap
  /// processor (IA32_APIC_BASE bit 8).
  public init(id: UInt8, clock: any GuestClock) {
    self.id = id
    self.clock = clock
    apicBase = APICBaseRegister(bootstrapProcessor: id == 0)
  }

  // MARK: Register page

  /// Whether the register page responds: only in xAPIC mode.
  public var respondsToMMIO: Bool { lock.locked { apicBase.mode == .xAPIC } }

  /// A read of the register page (`MMIODevice`).
  public func read(offset: UInt64, size: Int) -> UInt64 {
    let (value, error): (UInt32, UInt8?) = lock.locked {
      guard let v = register(at: Int(offset & 0xFF0)) else {
        return (0, recordError(ErrorStatus.illegalRegisterAddress))
      }
      return (v, nil)
    }
    if let error { accept(vector: error) }
    return UInt64(value >> (UInt32(offset & 3) * 8))
  }

  /// The register at page offset `offset` (the lock is held); nil for an unimplemented one.
  func register(at offset: Int) -> UInt32? {
    switch offset {
    case 0x20: return apicBase.mode == .x2APIC ? UInt32(id) : UInt32(id) << 24
    case 0x30: return 0x5_0014
    case 0x80: return tpr
    case 0x90, 0xC0: return 0  // arbitration priority, remote read: not used
    case 0xA0: return processorPriority
    case 0xB0: return 0
    case 0xD0: return apicBase.mode == .x2APIC ? x2APICLogicalID : ldr
    case 0xE0: return dfr
    case 0xF0: return svr
    case 0x100...0x170: return isr[(offset - 0x100) >> 4]
    case 0x180...0x1F0: return tmr[(offset - 0x180) >> 4]
    case 0x200...0x270: return irr[(offset - 0x200) >> 4]
    case 0x280: return errorStatus
    case 0x300: return icrLow & ~(1 << 12)  // delivery status: always idle (sent at once)
    case 0x310: return icrHigh
    case 0x320...0x370: return lvt[(offset - 0x320) >> 4]
    case 0x380: return timerMode == .tscDeadline ? 0 : initialCount
    case 0x390: return currentCount(now: clock.nanoseconds)
    case 0x3E0: return divide
    default: return nil
    }
  }

  /// A write to the register page (`MMIODevice`).
  public func write(offset: UInt64, size: Int, value: UInt64) {
    let v = UInt32(truncatingIfNeeded: value)
    var retiredLevel: UInt8?
    var local: UInt8?
    let ipi: InterProcessorInterrupt? = lock.locked {
      switch Int(offset & 0xFF0) {
      case 0x80: tpr = v & 0xFF
      case 0xB0: retiredLevel = endOfInterrupt()
      case 0xD0: ldr = v & 0xFF00_0000
      case 0xE0: dfr = v | 0x0FFF_FFFF
      case 0xF0: writeSpuriousVector(v)
      case 0x280: loadErrorStatus()
      case 0x300:
        icrLow = v
        return outgoing(InterProcessorInterrupt(source: id, icrLow: v, icrHigh: icrHigh), error: &local)
      case 0x310: icrHigh = v & 0xFF00_0000
      case 0x320...0x370: writeLVT((Int(offset & 0xFF0) - 0x320) >> 4, v)
      case 0x380: writeInitialCount(v)
      case 0x3E0: divide = v & 0xB
      case 0x20, 0x30, 0x90, 0xA0, 0xC0, 0x100...0x270, 0x390: break  // read-only
      default: local = recordError(ErrorStatus.illegalRegisterAddress)
      }
      return nil
    }
    finish(ipi: ipi, retiredLevel: retiredLevel, local: local)
  }

  /// Sends, retires and raises what a register write produced, with the lock released.
  func finish(ipi: InterProcessorInterrupt?, retiredLevel: UInt8?, local: UInt8?) {
    if let ipi { send?(ipi) }
    if let retiredLevel { levelEOI?(retiredLevel) }
    if let local { accept(vector: local) }
  }

  /// The ICR's message, or nil when it carries an illegal vector (send illegal vector); the lock
  /// is held. `error` receives the error interrupt's vector if one is due.
  func outgoing(_ ipi: InterProcessorInterrupt, error: inout UInt8?) -> InterProcessorInterrupt? {
    if ipi.carriesVector && ipi.vector < 16 {
      error = recordError(ErrorStatus.sendIllegalVector)
      return nil
    }
    return ipi
  }

  /// SVR: LVT entries keep their values when the APIC is software-disabled (writes while it is
  /// disabled are masked), so LINT0 in virtual-wire mode survives a disable/enable cycle.
  func writeSpuriousVector(_ v: UInt32) {
    svr = v & 0x13FF
  }

  func writeLVT(_ index: Int, _ v: UInt32) {
    let value = softwareEnabled ? v : v | LVT.masked
    if index == LVT.timer {
      // A write that changes the timer mode disarms the timer (SDM vol. 3, "TSC-Deadline Mode").
      let oldMode = timerMode
      lvt[index] = value
      if timerMode != oldMode {
        initialCount = 0
        tscDeadline = 0
      }
    } else {
      lvt[index] = value
    }
  }

  func writeInitialCount(_ v: UInt32) {
    guard timerMode != .tscDeadline else { return }
    initialCount = v
    timerStart = clock.nanoseconds
  }

  // MARK: Errors

  /// Notes `bits` in the error register; returns the LVT error vector when an interrupt is due
  /// (the lock is held; accept the vector after releasing it).
  func recordError(_ bits: UInt32) -> UInt8? {
    let fresh = bits & ~newErrors
    newErrors |= bits
    let entry = lvt[LVT.error]
    guard fresh != 0, entry & LVT.masked == 0, UInt8(entry & 0xFF) >= 16 else { return nil }
    return UInt8(entry & 0xFF)
  }

  /// An ESR write: the errors since the previous write become readable, and collecting starts over.
  func loadErrorStatus() {
    errorStatus = newErrors
    newErrors = 0
  }

  /// An IPI this APIC sent reached no APIC (send accept error).
  func noteUndeliveredIPI() {
    let vector = lock.locked { recordError(ErrorStatus.sendAccept) }
    if let vector { accept(vector: vector) }
  }

  // MARK: Interrupt acceptance

  /// Whether the 8259's INTR reaches this CPU: while the APIC is disabled or software-disabled
  /// (power-on, the PIC wired straight through), or when LINT0 is unmasked in ExtINT mode
  /// (virtual wire).
  public var passesExternalInterrupts: Bool {
    lock.locked {
      apicBase.mode == .disabled || svr & 0x100 == 0
        || (lvt[LVT.lint0] & LVT.masked == 0 && (lvt[LVT.lint0] >> 8) & 7 == 7)
    }
  }

  /// SVR bit 8: the APIC is software-enabled.
  public var softwareEnabled: Bool { svr & 0x100 != 0 }

  /// The processor priority's class (PPR bits 7:4, as a value 0x00-0xF0) that lowest-priority
  /// arbitration compares. Any thread.
  public var arbitrationPriority: UInt32 { lock.locked { processorPriority & 0xF0 } }

  var processorPriority: UInt32 {
    let isrv = highest(isr) ?? 0
    return (tpr & 0xF0) >= (UInt32(isrv) & 0xF0) ? tpr : UInt32(isrv) & 0xF0
  }

  func highest(_ bits: [UInt32]) -> UInt8? {
    for i in stride(from: 7, through: 0, by: -1) where bits[i] != 0 {
      return UInt8(i * 32 + 31 - bits[i].leadingZeroBitCount)
    }
    return nil
  }

  /// A fixed interrupt `vector` arrives (from an IPI, the IOAPIC or a local source). Vectors
  /// below 16 are illegal and set the error register instead; a disabled APIC accepts nothing.
  public func accept(vector: UInt8, level: Bool = false) {
    var error: UInt8?
    let accepted: Bool = lock.locked {
      guard apicBase.mode != .disabled else { return false }
      guard vector >= 16 else {
        error = recordError(ErrorStatus.receiveIllegalVector)
        return false
      }
      irr[Int(vector >> 5)] |= 1 << UInt32(vector & 31)
      if level {
        tmr[Int(vector >> 5)] |= 1 << UInt32(vector & 31)
      } else {
        tmr[Int(vector >> 5)] &= ~(1 << UInt32(vector & 31))
      }
      return true
    }
    if let error { accept(vector: error) }
    if accepted { notify?() }
  }

  /// An NMI arrives (an IPI, an I/O APIC entry or LINT1): it waits for the vCPU
  /// (`takeNMI`). A disabled APIC accepts none.
  public func acceptNMI() {
    let accepted: Bool = lock.locked {
      guard apicBase.mode != .disabled else { return false }
      nmiPending = true
      return true
    }
    if accepted { notify?() }
  }

  /// True while an NMI waits for the vCPU.
  public var hasPendingNMI: Bool { lock.locked { nmiPending } }

  /// Hands the waiting NMI to the vCPU: true (and cleared) if there was one.
  public func takeNMI() -> Bool {
    lock.locked {
      let pending = nmiPending
      nmiPending = false
      return pending
    }
  }

  /// An edge on LINT1, the legacy NMI wire: as LVT LINT1 says (NMI, or a fixed vector; masked or
  /// other modes: nothing). While the APIC is disabled or software-disabled the wire reaches the
  /// bootstrap processor's NMI input directly, as the 8259 reaches its INTR.
  public func signalLINT1() {
    enum Outcome { case none, nmi, vector(UInt8) }
    let outcome: Outcome = lock.locked {
      if apicBase.mode == .disabled || !softwareEnabled {
        guard apicBase.value & APICBaseRegister.bootstrapFlag != 0 else { return .none }
        nmiPending = true
        return .nmi
      }
      let entry = lvt[LVT.lint1]
      guard entry & LVT.masked == 0 else { return .none }
      switch (entry >> 8) & 7 {
      case 0: return .vector(UInt8(entry & 0xFF))
      case 4:
        nmiPending = true
        return .nmi
      default: return .none
      }
    }
    switch outcome {
    case .none: break
    case .nmi: notify?()
    case .vector(let v): accept(vector: v)
    }
  }

  /// The TPR as CR8 shows it: its priority class, bits 7:4 (SDM vol. 3, "Task Priority in IA-32e
  /// Mode"). Setting it is a MOV to CR8: TPR[7:4] = the value, TPR[3:0] = 0. The vCPU's runner
  /// keeps it and the vCPU's CR8 one register (`VCPURunner+TaskPriority.swift`).
  public var taskPriorityClass: UInt8 {
    get { lock.locked { UInt8(tpr >> 4) } }
    set { lock.locked { tpr = UInt32(newValue & 15) << 4 } }
  }

  /// The task-priority threshold for the vCPU (as VMX's): the priority class of the highest
  /// waiting vector when only the TPR holds it back (its class is above the class in service but
  /// not above the TPR's), so a MOV to CR8 below it makes it deliverable; 0 when there is none.
  /// Never above `taskPriorityClass`.
  public var taskPriorityThreshold: UInt8 {
    lock.locked {
      guard let v = highest(irr) else { return 0 }
      let waiting = UInt32(v) >> 4
      let inService = UInt32(highest(isr) ?? 0) >> 4
      return waiting > inService && waiting <= tpr >> 4 ? UInt8(waiting) : 0
    }
  }

  /// True when an interrupt above the processor priority is waiting.
  public var hasDeliverableInterrupt: Bool {
    lock.locked {
      guard let v = highest(irr) else { return false }
      return UInt32(v) & 0xF0 > processorPriority & 0xF0
    }
  }

  /// The INTA cycle: the highest waiting vector above the processor priority moves to in-service
  /// and is returned; nil when none is deliverable.
  public func acknowledge() -> UInt8? {
    lock.locked {
      guard let v = highest(irr), UInt32(v) & 0xF0 > processorPriority & 0xF0 else { return nil }
      irr[Int(v >> 5)] &= ~(1 << UInt32(v & 31))
      isr[Int(v >> 5)] |= 1 << UInt32(v & 31)
      return v
    }
  }

  /// Retires the highest in-service vector; returns it when it was level-triggered.
  func endOfInterrupt() -> UInt8? {
    guard let v = highest(isr) else { return nil }
    isr[Int(v >> 5)] &= ~(1 << UInt32(v & 31))
    return tmr[Int(v >> 5)] & (1 << UInt32(v & 31)) != 0 ? v : nil
  }

  /// Back to the power-on state (a machine reset): xAPIC mode at 0xFEE00000; the ID stays.
  public func reset() {
    lock.locked {
      apicBase = APICBaseRegister(bootstrapProcessor: id == 0)
      clearRegisters()
    }
  }

  /// INIT: the registers return to their reset values, but IA32_APIC_BASE, and so the mode, stays.
  public func receiveINIT() {
    lock.locked { clearRegisters() }
  }

  /// Every register but the ID and IA32_APIC_BASE at its reset value (the lock is held).
  func clearRegisters() {
    tpr = 0
    ldr = 0
    dfr = 0xFFFF_FFFF
    svr = 0xFF
    isr = [UInt32](repeating: 0, count: 8)
    tmr = isr
    irr = isr
    errorStatus = 0
    newErrors = 0
    icrLow = 0
    icrHigh = 0
    lvt = [UInt32](repeating: LVT.masked, count: 6)
    initialCount = 0
    divide = 0
    tscDeadline = 0
    nmiPending = false
  }

  // MARK: Addressing

  /// The logical destination register's APIC bits (flat model: one bit per APIC).
  var logicalID: UInt8 { lock.locked { UInt8(ldr >> 24) } }

  /// The x2APIC logical ID, derived from the ID: cluster (ID bits 31-4) in bits 31-16, and bit
  /// (ID & 15) of the cluster's 16 (the lock is held, or not needed: it depends on `id` only).
  var x2APICLogicalID: UInt32 { UInt32(id >> 4) << 16 | 1 << UInt32(id & 15) }

  /// Whether a message's destination names this APIC: physical (an ID, or the broadcast ID) or
  /// logical (flat in xAPIC mode: a bit mask over the LDR's APIC bits; cluster in x2APIC mode:
  /// the cluster ID must match and the mask must hold this APIC's bit).
  public func isAddressed(by ipi: InterProcessorInterrupt) -> Bool {
    let destination = ipi.destination
    let broadcast = destination == ipi.broadcastDestination || destination == 0xFFFF_FFFF
    if !ipi.logical { return broadcast || destination == UInt32(id) }
    return lock.locked {
      switch apicBase.mode {
      case .x2APIC:
        if broadcast { return true }
        let logical = x2APICLogicalID
        return destination >> 16 == logical >> 16 && destination & logical & 0xFFFF != 0
      case .xAPIC:
        return UInt8(ldr >> 24) & UInt8(truncatingIfNeeded: destination) != 0
      case .disabled:
        return false
      }
    }
  }
}
