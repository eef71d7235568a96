import X86

/// Reads of memory through the same base and index registers, close together, looked up in the
/// TLB once: the first of them (the group's leader) checks the whole range the group touches (in
/// one page, RAM, readable), keeps the host address of its low end in a state-page word, and every
/// other read of the group is that word plus its offset: a load and an add instead of a lookup of
/// about ten instructions. The registers must not change between the reads, which is what makes
/// their addresses a fixed distance apart. If the check fails the leader side-exits, before any
/// read of the group ran: the interpreter runs it, and the block at the next instruction
/// continues (a range that straddles two pages is slower, not wrong).
extension BlockCompiler {
  /// A group of reads: its leader (the first of them), the lowest displacement and the end of
  /// the highest read, how many reads it has, and the state-page word it uses (nil: none, the
  /// group is not used).
  struct ReadGroup {
    var leader: Int
    var low: Int64
    var end: Int64
    var members: Int
    var slot: Int? = nil
  }

  /// Widest range one group may check (smaller: less chance that the range straddles a page).
  static let readGroupSpan: Int64 = 512
  /// State-page words for group pointers (`CPUStateLayout.translatorReadGroups`).
  static let readGroupSlots = 4

  /// The size of the memory read `g` makes through `memoryOperand(write: false)` when that is
  /// its only access to memory, else nil.
  static func groupableReadSize(_ g: GuestInstruction) -> Int? {
    let ins = g.instruction
    switch g.form {
    case .addRM, .orRM, .adcRM, .sbbRM, .andRM, .subRM, .xorRM, .cmpRM, .testRM, .imulM, .cmovM,
      .cmpMR, .testMR, .cmpMI, .testMI:
      return Int(ins.operandSize)
    case .movRM, .movsxRM:
      return Int(ins.operands.1.size)
    default:
      return nil
    }
  }

  /// The guest registers `g` may write, as a bit mask (every one for a callout).
  static func writtenRegisters(_ g: GuestInstruction) -> UInt32 {
    let ins = g.instruction
    var mask: UInt32 = 0
    if ins.operands.0.kind == .gpr { mask |= 1 << UInt32(ins.operands.0.reg & 15) }
    switch g.form {
    case .pushR, .pushI, .popR, .callRel, .ret: mask |= 1 << 4
    case .generic:
      if g.special == nil { return 0xFFFF }
      // Special forms: XADD/XCHG write their register, CMPXCHG RAX, the stack ones RSP.
      if ins.operands.1.kind == .gpr { mask |= 1 << UInt32(ins.operands.1.reg & 15) }
      mask |= 1 << 0 | 1 << 4
    default: break
    }
    return mask
  }

  /// Finds the block's read groups (`readGroups`, and each member's group and offset in
  /// `readGroupMember`).
  mutating func planReadGroups() {
    struct Key: Hashable {
      var base: UInt8
      var index: UInt8
      var scale: UInt8
      var segment: UInt8
    }
    readGroupMember = Array(repeating: nil, count: block.instructions.count)
    var open: [Key: Int] = [:]
    var members: [(k: Int, group: Int, displacement: Int64)] = []
    for (k, g) in block.instructions.enumerated() {
      let ins = g.instruction
      if let size = Self.groupableReadSize(g), ins.base != DecodedInstruction.ripBase,
        ins.base != DecodedInstruction.noRegister || ins.index != DecodedInstruction.noRegister
      {
        let key = Key(base: ins.base, index: ins.index, scale: ins.scale, segment: ins.segment)
        let d = ins.displacement
        if let i = open[key], max(readGroups[i].end, d + Int64(size)) - min(readGroups[i].low, d) <= Self.readGroupSpan
        {
          readGroups[i].low = min(readGroups[i].low, d)
          readGroups[i].end = max(readGroups[i].end, d + Int64(size))
          readGroups[i].members += 1
          members.append((k, i, d))
        } else {
          readGroups.append(ReadGroup(leader: k, low: d, end: d + Int64(size), members: 1))
          open[key] = readGroups.count - 1
          members.append((k, readGroups.count - 1, d))
        }
      }
      // A group ends where its base or index register changes (after this instruction's read),
      // and at SWAPGS, which changes the GS base the linear addresses include.
      if g.special == .swapGS { open = [:] }
      let written = Self.writtenRegisters(g)
      open = open.filter { key, _ in
        let uses = (key.base < 16 ? 1 << UInt32(key.base) : 0) | (key.index < 16 ? 1 << UInt32(key.index) : 0)
        return written & UInt32(uses) == 0
      }
    }
    // Groups of one read gain nothing; the others get a word each, while there are words.
    var slots = 0
    for i in readGroups.indices where readGroups[i].members > 1 && slots < Self.readGroupSlots {
      readGroups[i].slot = slots
      slots += 1
    }
    for m in members where readGroups[m.group].slot != nil {
      readGroupMember[m.k] = (m.group, Int32(m.displacement - readGroups[m.group].low))
    }
  }

  /// `memoryOperand` for a read of a group: RAX = its host address. The leader checks the group's
  /// range (side-exiting if need be) and keeps the range's host address; the others load it.
  mutating func groupedRead(_ g: GuestInstruction, group: Int, offset: Int32, k: Int) {
    // Only groups with a word have members (`planReadGroups`).
    let word = HostMemory(.rbx, Int32(CPUStateLayout.translatorReadGroups + 8 * readGroups[group].slot!))
    if readGroups[group].leader == k {
      clobberFlags()
      var low = g
      low.instruction.displacement = readGroups[group].low
      let exit = sideExit(k)
      let range = Int(readGroups[group].end - readGroups[group].low)
      linearAddress(low, size: range, write: false, exit: exit)
      hostPointer(size: range, write: false, exit: exit)
      a.mov(.memory(word), .rax)
    } else {
      // A load and a LEA: the host's flags (maybe the guest's) stay as they are.
      a.mov(.rax, .memory(word))
    }
    if offset != 0 { a.lea(.rax, HostMemory(.rax, offset)) }
  }
}
