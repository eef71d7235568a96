import Synchronization

/// What a binary translator (the `Translator` target) needs from the CPU model: a place in the run
/// loop, the conditions under which translated code may run, the decoded instructions of a block,
/// and the raw tables its generated code reads (the paging TLB, the host-page cache, the code-page
/// stamps). Package-internal: the translator is part of this package, embedders see none of it.
///
/// The contract mirrors the interpreter's fast path (docs/interpreter-execution.md): translated
/// code runs only the `FastForm` shapes, only in 64-bit paged or flat 32-bit code
/// (`TranslatedCodeMode`), and every guest
/// instruction in it either completes or leaves the state exactly as before that instruction (a
/// *side exit*), after which the interpreter runs the instruction in full, faults included. So the
/// interpreter stays the one definition of every instruction's slow cases.
package protocol BlockExecutor: AnyObject {
  /// Runs translated code from the current state for at most `budget` steps (instructions retired
  /// or exceptions delivered, as `CPU.run` counts them) and returns how many it took, with RIP (and
  /// everything else) committed, and the event an instruction it ran through the interpreter
  /// (`CPU.runCallout`) raised, which `CPU.run` returns at once. Called by `CPU.run` where the
  /// interpreter would otherwise run its fast-path loop; it may take 0 steps (nothing to run here).
  func runTranslated(_ cpu: CPU, budget: UInt64) -> (steps: UInt64, event: CPUEvent?)
  /// Counters for `--stats`: name, value, one line of description.
  var counters: [(name: String, value: UInt64, description: String)] { get }
}

/// The kinds of code translated code runs as (`CPU.translatedCodeMode`): what a translation
/// assumes beyond its code page, so part of what it is looked up by.
package enum TranslatedCodeMode: UInt64, Sendable {
  /// 64-bit code with paging on.
  case long64
  /// 32-bit code with flat CS, SS and DS and paging on (protected or compatibility mode).
  case flat32Paged
  /// 32-bit code with flat CS, SS and DS and paging off: linear addresses are physical.
  case flat32Unpaged

  /// How instructions decode.
  package var codeMode: CodeMode { self == .long64 ? .bits64 : .bits32 }
  /// Whether memory goes through the paging TLB (otherwise the host-page cache by physical page).
  package var paged: Bool { self != .flat32Unpaged }
}

/// The raw tables generated code reads, with the layouts it needs. Valid for the CPU's lifetime.
package struct TranslationTables {
  /// The paging TLB: `SoftTLB.sets * 6` entries of `entryStride` bytes; an entry's slot is
  /// `SoftTLB.slot(linear, kind:, user:)`. Always at `CPUStateLayout.pagingTLB` from the state page.
  package let pagingTLB: UnsafeMutableRawPointer
  /// Bytes per TLB entry and the offsets of its fields.
  package let entryStride: Int
  package let tagOffset: Int
  package let ramTagOffset: Int
  package let addendOffset: Int
  /// The physical page in bits 63-12, the page's kind below (`SoftTLB.Entry.physicalAndKind`).
  package let physicalPageOffset: Int
  /// The write side of the host-page cache: `CPU.hostPageSlots` physical page numbers and their
  /// host pointers (a slot is `page & (hostPageSlots - 1)`).
  package let hostWritePage: UnsafeMutablePointer<UInt64>
  package let hostWritePointer: UnsafeMutableRawPointer
  /// The read side, the same way (what unpaged code reads through).
  package let hostReadPage: UnsafeMutablePointer<UInt64>
  package let hostReadPointer: UnsafeMutableRawPointer
  package let hostPageSlots: Int
  /// One byte per code-page slot (`page & (codePageSlots - 1)`): non-zero while the page holds
  /// decoded or translated code, so a store to it must take the slow path and invalidate.
  package let pageHasCode: UnsafeMutableRawPointer
  package let codePageSlots: Int
  /// The code-page generations (4 bytes per code-page slot) and this CPU's decode-cache epoch (4
  /// bytes): a page's current generation is their wrapping sum (`CPU.codeGeneration`).
  package let pageGeneration: UnsafeMutableRawPointer
  package let epoch: UnsafeMutableRawPointer
}

extension CPU {
  /// The translator this CPU runs its code through (nil: the interpreter's fast path alone).
  package var blockExecutor: (any BlockExecutor)? {
    get { translator }
    set { translator = newValue }
  }

  /// The kind of code translated code may run as from the current state, or nil when only the
  /// interpreter may run: 64-bit code with paging on, or 32-bit code with flat CS, SS and DS (base
  /// 0, limit 4 GiB; SS and DS readable and writable with no further check, SS a 32-bit stack),
  /// paged or not (then with the A20 gate open); and no debug state that needs a look at every
  /// instruction (TF, RF, armed breakpoints), no pending interrupt shadow, no alignment checking
  /// that a misaligned access could owe, not the difftest's flat-user mode.
  package var translatedCodeMode: TranslatedCodeMode? {
    guard !interruptShadow,
      stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self) & (Flags.tf | Flags.rf | Flags.ac) == 0,
      !debugChecksNeeded, injectedFault == nil, !flatUser, !(stopsAtUserLevel && runsAtUserLevel)
    else { return nil }
    switch stateRaw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self) {
    case 64:
      return pagingActive ? .long64 : nil
    case 32:
      guard flatSegment(1, access: 0), flatSegment(2, access: SegmentAccess.read | SegmentAccess.write),
        flatSegment(3, access: SegmentAccess.read | SegmentAccess.write),
        state.segmentAttributes(2) & SegmentAttributes.defaultBig != 0
      else { return nil }
      if pagingActive { return .flat32Paged }
      // Unpaged, a 32-bit linear address must be its own physical address.
      return addressMask & 0xFFFF_FFFF == 0xFFFF_FFFF ? .flat32Unpaged : nil
    default:
      return nil
    }
  }

  /// Whether segment register `s` has base 0, limit 4 GiB - 1 and allows `access` without a
  /// type check.
  @inline(__always) private func flatSegment(_ s: Int, access: UInt8) -> Bool {
    state.segmentBase(s) == 0 && state.segmentLimit(s) == 0xFFFF_FFFF && state.segmentAccess(s) & access == access
  }

  /// The physical address of the instruction at `rip` when its page is in the TLB for execution
  /// (nil: the interpreter must fetch it first, walking the page tables and faulting if due).
  package func physicalCodeAddress(_ rip: UInt64) -> UInt64? {
    guard isCanonical(rip) else { return nil }
    return quickTranslate(rip, kind: .execute)
  }

  /// The code-page generation a translation of code at `physical` must match to stay valid: the
  /// decode cache's, which a write to the page or a flush of this CPU's caches changes.
  package func codeGeneration(ofPageHolding physical: UInt64) -> UInt32 {
    DecodeCache.generation(cachePageGeneration, epoch: cacheEpoch.pointee, ofPageHolding: physical)
  }

  /// The instruction at physical `physical` decoded in `mode`, and its fast form, from the
  /// decode cache or decoded now (which marks its page as holding code, so stores to it take the
  /// slow path). nil when it does not fit in its page or cannot be read from RAM.
  package func translatableInstruction(
    physical: UInt64, mode: CodeMode
  ) -> (instruction: DecodedInstruction, form: FastForm)? {
    guard physical & 0xFFF <= 0x1000 - 15 else { return nil }
    if let e = decodeCache.lookup(physical, mode) { return (e.pointee.instruction, e.pointee.form) }
    guard let p = memory.hostPointer(physical: physical & ~0xFFF, length: 4096, write: false) else { return nil }
    let bytes = UnsafeRawBufferPointer(start: p + Int(physical & 0xFFF), count: 15)
    guard case .success(let ins) = Decoder.decode(bytes, mode: mode, model: model) else { return nil }
    protectCode(page: physical >> 12)
    let e = decodeCache.insert(physical, mode, ins)
    decodeCacheFills &+= 1
    return (e.pointee.instruction, e.pointee.form)
  }

  /// For generated code whose inline TLB lookup of a read missed: caches the translation of the
  /// `size` bytes at `linear` (walking the page tables as the interpreter's read would, without
  /// faulting: the same entry filled, the same accessed bits set), and returns their host address
  /// when generated code can make the read itself: one page, RAM, a canonical address. Otherwise
  /// nil, and the block side-exits to have the interpreter make it (a fault, #GP or #SS for a
  /// non-canonical address, which the page walk would not see, MMIO, a page crossing).
  package func hostAddressAfterTLBMiss(linear: UInt64, size: Int) -> UnsafeMutableRawPointer? {
    guard (linear & 0xFFF) &+ UInt64(size) <= 0x1000, pagingActive, isCanonical(linear) else { return nil }
    let user = runsAtUserLevel
    guard system.mmu.cacheTranslation(linear, kind: .read, user: user, state: state) else { return nil }
    return system.mmu.tlb.hostPointer(linear, kind: .read, user: user)
  }

  /// Whether the current privilege level is 3 (translations are keyed by it: it picks the TLB's
  /// user or supervisor tables).
  package var runsAtUserLevel: Bool { stateRaw.load(fromByteOffset: CPUStateLayout.cpl, as: UInt64.self) == 3 }

  /// Where translated code may go after a callout.
  package enum CalloutContinuation {
    /// To the next instruction (a link): it retired there and changed nothing translated code
    /// depends on.
    case next
    /// To the block at the new RIP, found through the indirect-branch table of the (possibly new)
    /// privilege level: control went elsewhere (a system call or return, a software interrupt, an
    /// exception delivered) and only the privilege level changed of what translated code assumes.
    case elsewhere
    /// Back to the dispatcher.
    case leave
  }

  /// A callout: generated code hands the instruction at RIP (whose next instruction is at
  /// `nextRIP`) to the interpreter, which runs it in full (one step: faults delivered, I/O and
  /// other events returned). The block may go on only if the instruction raised no event, and
  /// changed nothing translated code depends on (code mode, CR0/CR3/CR4/EFER, and whatever
  /// `translatedCodeMode` checks) but the privilege level and RIP. After a TLB flush (INVLPG,
  /// INVPCID, a CR4 write of the same value) it goes on to the next instruction only while the
  /// execute TLB still maps the code page where it did: a link within the page does not look
  /// (every other way in, the indirect table and links to other pages, checks the mapping).
  /// `instruction` is the instruction at RIP as decoded when the block was translated (still what
  /// is there: the block runs only while its code page's generation is the one it was translated
  /// from, and no store in the block can reach a page holding code), so the interpreter skips the
  /// fetch and the decode-cache lookup. `mode` is the kind of code the block was translated as
  /// (what `translatedCodeMode` said when the dispatcher entered it).
  package func runCallout(
    nextRIP: UInt64, instruction: UnsafeMutablePointer<DecodedInstruction>, mode: TranslatedCodeMode
  ) -> (continuation: CalloutContinuation, event: CPUEvent?) {
    let before = TranslationContext(self)
    let codePage = quickTranslate(nextRIP, kind: .execute).map { $0 >> 12 }
    if let event = stepInline(decoded: instruction) { return (.leave, event) }
    let after = TranslationContext(self)
    guard after.sameAddressSpaceAndMode(as: before), translatedCodeMode == mode else {
      return (.leave, nil)
    }
    guard after.cpl == before.cpl && state.rip == nextRIP else { return (.elsewhere, nil) }
    if after.tlbFlushes != before.tlbFlushes {
      guard let codePage, quickTranslate(nextRIP, kind: .execute).map({ $0 >> 12 }) == codePage else {
        return (.leave, nil)
      }
    }
    return (.next, nil)
  }

  /// IN or OUT (not the string forms) carried out for generated code by the access responder
  /// alone (the VMM's lightweight exits): the value read (0 after a write), or nil, nothing done,
  /// when the interpreter must run the instruction: no responder, an I/O breakpoint armed, CPL
  /// above IOPL (the TSS bitmap decides, or #GP), or the responder wants the full exit. Generated
  /// code runs in protected or long mode only, where CPL <= IOPL is all the permission needed.
  package func respondToPortIO(port: UInt16, size: Int, written: UInt64?) -> UInt64? {
    guard let responder = accessResponder, ioBreakpoints == 0,
      state.cpl <= Int((state.rflags >> 12) & 3)
    else { return nil }
    if let written {
      return responder(.portOut(port: port, size: size, value: written)) == nil ? nil : 0
    }
    return responder(.portIn(port: port, size: size))
  }

  /// SYSCALL, SYSRET to 64-bit mode or IRETQ, carried out for generated code that translates
  /// them: true when it retired (RIP, CPL, RSP, RCX/R11 or RFLAGS, CS and SS as the interpreter
  /// leaves them; IRET also unblocks NMIs), false with nothing changed when it faults (they check
  /// everything before they write: at most a descriptor's accessed bit is set, which running the
  /// instruction again sets again), for the interpreter to raise the fault. Generated code runs
  /// with no debug state and no interrupt shadow: nothing else of a step applies.
  package func privilegeTransfer(_ kind: PrivilegeTransfer, nextRIP: UInt64) -> Bool {
    do throws(Fault) {
      switch kind {
      case .syscall: try system.syscall(returnRIP: nextRIP)
      case .sysret: try system.sysret(operandSize: 8)
      case .iret:
        _ = try system.iret(operandSize: 8, returnRIP: nextRIP)
        nmiBlocked = false
      }
      return true
    } catch {
      return false
    }
  }

  /// How much of the budget generated code had used at its latest callout (the state page's
  /// translator slots).
  package var translatorBudgetUsed: UInt64 {
    stateRaw.load(fromByteOffset: CPUStateLayout.translatorBudget, as: UInt64.self)
      &- stateRaw.load(fromByteOffset: CPUStateLayout.translatorBudgetLeft, as: UInt64.self)
  }

  /// Counts instructions translated code retired (the interpreter's own count included).
  package func noteTranslatedRetired(_ count: UInt64) {
    instructionsRetired &+= count
  }

  /// The paging TLB slot (entry index) that caches `linear` for an access of `kind` at user or
  /// supervisor level.
  package static func tlbSlot(_ linear: UInt64, kind: MemoryAccessKind, user: Bool) -> Int {
    SoftTLB.slot(linear, kind: kind, user: user)
  }

  /// The raw tables for generated code.
  package var translationTables: TranslationTables {
    // Generated code reads these tables at fixed element sizes.
    precondition(MemoryLayout<Atomic<Bool>>.stride == 1 && MemoryLayout<Atomic<UInt32>>.stride == 4)
    let stride = MemoryLayout<SoftTLB.Entry>.stride
    precondition(
      UnsafeMutableRawPointer(pagingTLB) == stateRaw + CPUStateLayout.pagingTLB,
      "generated code finds the TLB after the state page")
    return TranslationTables(
      pagingTLB: UnsafeMutableRawPointer(pagingTLB), entryStride: stride,
      tagOffset: MemoryLayout<SoftTLB.Entry>.offset(of: \.tag)!,
      ramTagOffset: MemoryLayout<SoftTLB.Entry>.offset(of: \.ramTag)!,
      addendOffset: MemoryLayout<SoftTLB.Entry>.offset(of: \.addend)!,
      physicalPageOffset: MemoryLayout<SoftTLB.Entry>.offset(of: \.physicalAndKind)!,
      hostWritePage: hostWritePage, hostWritePointer: UnsafeMutableRawPointer(hostWritePointer),
      hostReadPage: hostReadPage, hostReadPointer: UnsafeMutableRawPointer(hostReadPointer),
      hostPageSlots: CPU.hostPageSlots,
      pageHasCode: UnsafeMutableRawPointer(decodeCache.pageHasCode), codePageSlots: DecodeCache.pageSlots,
      pageGeneration: UnsafeMutableRawPointer(cachePageGeneration), epoch: UnsafeMutableRawPointer(cacheEpoch))
  }
}

/// The privilege-changing control transfers generated code hands to `CPU.privilegeTransfer`
/// (the raw value is what it passes).
package enum PrivilegeTransfer: UInt64 {
  /// SYSCALL.
  case syscall = 0
  /// SYSRET to 64-bit mode (REX.W).
  case sysret = 1
  /// IRETQ.
  case iret = 2
}

/// What translated code assumes stays fixed while it runs (`CPU.runCallout`).
struct TranslationContext: Equatable {
  var cpl: UInt64
  var codeMode: UInt64
  var cr0: UInt64
  var cr3: UInt64
  var cr4: UInt64
  var efer: UInt64
  /// The TLB's flush count: a flush (a CR3 write, INVLPG, a paging-mode change) may have dropped
  /// the mapping of the code translated code would go on to.
  var tlbFlushes: Int

  init(_ cpu: CPU) {
    let raw = cpu.stateRaw
    cpl = raw.load(fromByteOffset: CPUStateLayout.cpl, as: UInt64.self)
    codeMode = raw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self)
    cr0 = raw.load(fromByteOffset: CPUStateLayout.cr0, as: UInt64.self)
    cr3 = raw.load(fromByteOffset: CPUStateLayout.cr3, as: UInt64.self)
    cr4 = raw.load(fromByteOffset: CPUStateLayout.cr4, as: UInt64.self)
    efer = raw.load(fromByteOffset: CPUStateLayout.efer, as: UInt64.self)
    tlbFlushes = cpu.tlbFlushCounter.pointee
  }

  /// Everything but the privilege level and the TLB's flush count is the same.
  func sameAddressSpaceAndMode(as other: TranslationContext) -> Bool {
    codeMode == other.codeMode && cr0 == other.cr0 && cr3 == other.cr3 && cr4 == other.cr4 && efer == other.efer
  }
}
