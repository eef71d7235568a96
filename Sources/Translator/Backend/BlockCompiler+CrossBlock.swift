import X86

/// What `sbt` adds to the back end beyond one block (`dbt` compiles without it): the static
/// translator's knowledge of the blocks around this one (`CrossBlockFlags`, `RegisterRegion`),
/// the ways out that keep flags in the host's RFLAGS or guest registers in host registers, the
/// entries that take them, and the register choice a region is made of.
extension BlockCompiler {
  /// What the static translator knows beyond one block (`sbt`; `dbt` compiles without it): the
  /// RIPs of blocks of the same linear page, translated with the same file, whose arithmetic flags
  /// are all dead at their start (each writes them before reading them or leaving), found from
  /// the whole control-flow graph; and whether this block is one of them.
  package struct CrossBlockFlags: Sendable {
    /// Blocks of this page a direct branch may reach with the flags still in the host's RFLAGS.
    package var deadAtStart: Set<UInt64>
    /// This block's flags are dead at its start: it gets a host-flags entry.
    package var hostFlagsEntry: Bool

    /// Knowledge for one block.
    package init(deadAtStart: Set<UInt64>, hostFlagsEntry: Bool) {
      self.deadAtStart = deadAtStart
      self.hostFlagsEntry = hostFlagsEntry
    }
  }

  /// What the static translator decided for a block of a *register region* (`sbt`; `dbt` compiles
  /// without it): a loop's blocks or a function's, within one page, that share one assignment of
  /// guest registers to the cache registers, so that a direct branch between two of them keeps
  /// the registers in host registers instead of writing them back and loading them again.
  package struct RegisterRegion: Sendable, Equatable {
    /// The region's guest registers: `cacheRegisters[i]` holds `guests[i]` (at most six).
    package var guests: [Int]
    /// Guest registers (bit per register number) a block of the region that branches here over a
    /// register-live link may have changed without writing them back: the register-live entry's
    /// way back to the dispatcher and every exit of this block store them.
    package var dirtyAtEntry: UInt32
    /// Direct-branch targets, blocks of the same region and page, that this block leaves for with
    /// the registers live (through `Output.registerLiveLinks`).
    package var liveTargets: Set<UInt64>
    /// Some block of the region branches here with the registers live: the block gets a
    /// register-live entry.
    package var liveEntry: Bool

    /// A region's decision for one block.
    package init(guests: [Int], dirtyAtEntry: UInt32, liveTargets: Set<UInt64>, liveEntry: Bool) {
      self.guests = guests
      self.dirtyAtEntry = dirtyAtEntry
      self.liveTargets = liveTargets
      self.liveEntry = liveEntry
    }
  }

  /// Whether `block` ends in a direct branch back to its own start.
  package static func loopsToItself(_ block: GuestBlock) -> Bool {
    block.instructions.last.flatMap { Self.staticTarget($0, mode: block.mode) } == block.startRIP
  }

  /// The guest registers a block caches on its own (no region): those it uses at least twice
  /// (once, in a block that loops to itself), most used first, at most six.
  package static func ownCacheChoice(_ block: GuestBlock) -> [Int] {
    let uses = registerUses(block)
    let threshold = loopsToItself(block) ? 1 : 2
    let chosen = (0..<16).filter { uses[$0] >= threshold }.sorted {
      uses[$0] > uses[$1] || (uses[$0] == uses[$1] && $0 < $1)
    }
    return Array(chosen.prefix(cacheRegisters.count))
  }

  /// The guest registers `block` writes (bit per register number; a callout writes them all).
  package static func registersWritten(_ block: GuestBlock) -> UInt32 {
    block.instructions.reduce(UInt32(0)) { $0 | writtenRegisters($1) }
  }

  /// How often `block`'s instructions name each guest register (operands, address registers,
  /// the stack pointer of stack operations twice, CL of a shift by CL).
  package static func registerUses(_ block: GuestBlock) -> [Int] {
    var uses = [Int](repeating: 0, count: 16)
    for g in block.instructions {
      let ins = g.instruction
      for o in [ins.operands.0, ins.operands.1, ins.operands.2] where o.kind == .gpr { uses[Int(o.reg)] += 1 }
      if ins.hasMemoryOperand {
        if ins.base < 16 { uses[Int(ins.base)] += 1 }
        if ins.index < 16 { uses[Int(ins.index)] += 1 }
      }
      switch g.form {
      case .pushR, .pushI, .popR, .callRel, .ret: uses[4] += 2
      case .shiftR where ins.operands.1.kind == .gpr: uses[1] += 1
      default: break
      }
    }
    return uses
  }

  /// Leaves for `rip`, a block of this page whose flags are dead at its start, with the guest's
  /// flags in the host's RFLAGS, uncaptured: through a jump patched only to that block's
  /// host-flags entry, and until then to an exit that captures them. Nothing here changes the
  /// host's flags (the refund is an LEA).
  mutating func hostFlagsExit(to rip: UInt64, refund: Int) {
    if refund > 0 { a.lea(.r9, HostMemory(.r9, Int32(refund))) }
    writeBackRegisters()
    let unlinked = a.newLabel()
    a.jmp(unlinked)
    hostFlagsLinks.append((a.count - 4, rip))
    a.bind(unlinked)
    clobberFlags()
    settleFlags()
    a.load(.rax, constant: rip)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
    a.jmp(epilogue)
  }

  /// Leaves for `rip`, a block of the same page and register region, with the region's registers
  /// live in their host registers: the flags settled into R10 as for any link, then a jump patched
  /// only to that block's register-live entry; until then (or when the block there is not the
  /// file's), the registers are written back and the block leaves through an ordinary link.
  mutating func registerLiveExit(to rip: UInt64, refund: Int) {
    clobberFlags()
    settleFlags()
    if refund > 0 { refundBudget(refund) }
    let unlinked = a.newLabel()
    a.jmp(unlinked)
    registerLiveLinks.append((a.count - 4, rip))
    a.bind(unlinked)
    writeBackRegisters()
    linkableJump(to: rip)
  }

  /// Leaves for `rip`, a block of the same page and register region whose flags are dead at its
  /// start, with both the registers live and the guest's flags in the host's RFLAGS: a jump
  /// patched only to that block's register-live host-flags entry; until then, a host-flags exit
  /// (registers written back). Nothing here changes the host's flags (the refund is an LEA).
  mutating func registerLiveHostFlagsExit(to rip: UInt64, refund: Int) {
    if refund > 0 { a.lea(.r9, HostMemory(.r9, Int32(refund))) }
    let unlinked = a.newLabel()
    a.jmp(unlinked)
    registerLiveHostFlagsLinks.append((a.count - 4, rip))
    a.bind(unlinked)
    hostFlagsExit(to: rip, refund: 0)
  }

  /// The register-live host-flags entry, out of line: the host-flags entry's budget check (no
  /// flag changed) for a block entered with the region's registers live, then on after the
  /// register loads. When the budget does not cover the block, the flags are captured and the
  /// registers a block before it may have left unstored written back before returning to the
  /// dispatcher.
  mutating func emitRegisterLiveHostFlagsEntry() -> Int? {
    guard let region, region.liveEntry, hostFlagsEntryOffset != nil else { return nil }
    let entry = a.count
    let short = a.newLabel()
    a.lea(.rax, HostMemory(.r9, Int32(-block.instructions.count)))
    a.cqo()
    a.mov(.rcx, .register(.rdx))
    a.jmpUnlessRCXZero(short)
    a.mov(.r9, .register(.rax))
    a.jmp(loopHead)
    a.bind(short)
    flagPlace = FlagPlace(pending: true, inHost: true, format: .image)
    clobberFlags()
    settleFlags()
    for (guest, host) in cachedRegisters where region.dirtyAtEntry & (1 << UInt32(guest)) != 0 {
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * guest))), host)
    }
    returnToDispatcher()
    return entry
  }

  /// The register-live entry (a block of a register region that another block of the region
  /// branches to, `RegisterRegion`), out of line: entered with the region's guest registers in
  /// their host registers and the flags in R10. The code page's generation was checked on
  /// entering the page and generated code never writes a code page (as for a branch back to a
  /// block's own start), so only the budget is checked; it goes on after the register loads.
  /// When the budget does not cover the block, the registers a block before it may have left
  /// unstored are written back before returning to the dispatcher, so the state there is exact.
  mutating func emitRegisterLiveEntry() -> Int? {
    guard let region, region.liveEntry else { return nil }
    let entry = a.count
    chargeBudget(thenGoTo: loopHead)
    for (guest, host) in cachedRegisters where region.dirtyAtEntry & (1 << UInt32(guest)) != 0 {
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * guest))), host)
    }
    returnToDispatcher()
    return entry
  }

  /// The host-flags entry (a block whose flags are dead at its start, `CrossBlockFlags`): entered
  /// from a block of the same page with the guest's flags in the host's RFLAGS and R10 stale. The
  /// page's generation was checked on entering that page and nothing in generated code writes a
  /// code page (as for a branch back to a block's own start); the budget check changes no flag
  /// (LEA, CQO, JRCXZ) and falls through into the register loads after the chained entry's checks.
  /// When the budget does not cover the block, the flags are captured from the host's RFLAGS
  /// before returning to the dispatcher (`emitHostFlagsShortBudget`), so the state there is exact.
  mutating func emitHostFlagsEntry() -> Int? {
    guard let crossBlock, crossBlock.hostFlagsEntry, liveFlagsAtStart == 0 else { return nil }
    let entry = a.count
    let short = a.newLabel()
    hostFlagsShortBudget = short
    a.lea(.rax, HostMemory(.r9, Int32(-block.instructions.count)))
    a.cqo()
    a.mov(.rcx, .register(.rdx))
    a.jmpUnlessRCXZero(short)
    a.mov(.r9, .register(.rax))
    return entry
  }

  /// The host-flags entry's way out when the budget does not cover the block, out of line.
  mutating func emitHostFlagsShortBudget() {
    guard let short = hostFlagsShortBudget else { return }
    a.bind(short)
    flagPlace = FlagPlace(pending: true, inHost: true, format: .image)
    clobberFlags()
    settleFlags()
    returnToDispatcher()
  }
}
