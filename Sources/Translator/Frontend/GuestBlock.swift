import X86

/// One guest instruction of a block, as the front end found it.
package struct GuestInstruction {
  /// Its linear address (RIP).
  package var rip: UInt64
  package var instruction: DecodedInstruction
  /// The interpreter's classification, which is also the set the back end translates.
  package var form: FastForm
  /// For a `.generic` instruction: a shape the back end translates although the interpreter has
  /// no fast form for it (nil: a callout).
  package var special: SpecialForm? = nil
  /// The linear address of the next instruction.
  package var nextRIP: UInt64 { rip &+ UInt64(instruction.length) }
}

/// A run of guest instructions starting at one RIP: what the back end turns into host code. It
/// goes on past up to `maximumBranchExits` forward conditional branches (a superblock: one entry,
/// an exit at each taken branch, so the fall-through path pays for no block change) and ends
/// after any other branch, after the first instruction the back end does not translate (a callout to the
/// interpreter), before an instruction that crosses the end of the code page, or at
/// `maximumLength` instructions, so a block covers one physical page and is invalidated with it.
package struct GuestBlock {
  /// Longest block, in guest instructions (bounds how long translated code runs without returning
  /// to the dispatcher: interrupt latency and budgets).
  package static let maximumLength = 64
  /// Conditional branches a block may go on past.
  package static let maximumBranchExits = 8

  package var startRIP: UInt64
  package var physicalStart: UInt64
  /// The kind of code it is (how it decodes, its stack and branch widths, how it reaches memory).
  package var mode: TranslatedCodeMode
  package var instructions: [GuestInstruction] = []

  /// Reads the block at `rip` (physical `physical`) of `mode` code from `cpu`'s decode cache,
  /// decoding what is not cached; empty when the first instruction cannot be read (it crosses the
  /// page, or does not decode).
  package static func read(from cpu: CPU, rip: UInt64, physical: UInt64, mode: TranslatedCodeMode) -> GuestBlock {
    var block = GuestBlock(startRIP: rip, physicalStart: physical, mode: mode)
    var linear = rip
    var phys = physical
    var branchExits = 0
    while block.instructions.count < maximumLength {
      guard let (ins, form) = cpu.translatableInstruction(physical: phys, mode: mode.codeMode) else { break }
      // An instruction the back end does not translate ends the block as a callout: the
      // interpreter runs it from inside the block (`CPU.runCallout`).
      let translated = BlockCompiler.translates(form, ins, mode: mode)
      let g = GuestInstruction(
        rip: linear, instruction: ins, form: translated ? form : .generic,
        special: translated ? nil : SpecialForm(ins, mode: mode))
      if mode == .long64 {
        // A branch to a non-canonical target faults: leave it to the interpreter.
        if let target = BlockCompiler.staticTarget(g, mode: mode), !BlockCompiler.isCanonical(target) { break }
      } else if g.nextRIP > 0xFFFF_FFFF {
        // 32-bit code running into the end of the address space: the interpreter's.
        break
      }
      block.instructions.append(g)
      // A forward conditional branch (an if) is gone on past; a backward one (a loop's edge) ends
      // the block, so a loop stays one block that branches back to its own start.
      if g.form == .jcc && branchExits < maximumBranchExits
        && BlockCompiler.staticTarget(g, mode: mode).map({ $0 > g.rip }) == true
      {
        branchExits += 1
      } else if BlockCompiler.endsBlock(g) {
        break
      }
      let next = g.nextRIP
      guard next & ~0xFFF == rip & ~0xFFF else { break }
      linear = next
      phys = (physical & ~0xFFF) | (next & 0xFFF)
    }
    return block
  }
}

/// Instructions outside the interpreter's fast forms that the back end still translates (the
/// rest of `.generic` are callouts).
package enum SpecialForm: Equatable {
  /// JMP r/m64 and CALL r/m64: the target through the inline indirect-branch table.
  case jumpIndirect, callIndirect
  /// PUSH m64.
  case pushMemory
  /// CLD and STD.
  case setDirection(Bool)
  /// SWAPGS (at CPL 0; a side exit otherwise).
  case swapGS
  /// A read-modify-write of memory done atomically: LOCK ADD OR ADC SBB AND SUB XOR (register or
  /// immediate source), LOCK INC/DEC, XADD, XCHG and CMPXCHG with a register (with or without
  /// LOCK: doing them atomically is one of the outcomes the unlocked ones allow).
  case atomicUpdate
  /// IN and OUT (port in an immediate or DX; not the string forms): the VMM's lightweight exits
  /// through a helper call, else a side exit to the interpreter (which makes it a full exit).
  case portIO
  /// SYSCALL, SYSRET to 64-bit mode and IRETQ, in 64-bit code: a helper call
  /// (`CPU.privilegeTransfer`), then on through the indirect-branch table of the new privilege
  /// level; a fault side-exits.
  case privilegeTransfer(PrivilegeTransfer)

  package init?(_ ins: DecodedInstruction, mode: TranslatedCodeMode) {
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    guard BlockCompiler.operandsTranslate(ins, mode: mode) else { return nil }
    if o0.kind == .memory {
      let locked = ins.prefixes.contains(.lock)
      let atomic: Bool
      switch ins.operation {
      case .xadd, .xchg, .cmpxchg: atomic = o1.kind == .gpr
      case .add, .or, .adc, .sbb, .and, .sub, .xor:
        atomic = locked && (o1.kind == .gpr || (o1.kind == .immediate && o1.reg == 0))
      case .inc, .dec: atomic = locked
      default: atomic = false
      }
      if atomic {
        self = .atomicUpdate
        return
      }
    }
    guard !ins.prefixes.contains(.lock) else { return nil }
    switch ins.operation {
    case .jmp where ins.operandSize == 8 && (o0.kind == .gpr || o0.kind == .memory): self = .jumpIndirect
    case .call where ins.operandSize == 8 && (o0.kind == .gpr || o0.kind == .memory): self = .callIndirect
    case .push where ins.operandSize == 8 && o0.kind == .memory: self = .pushMemory
    case .cld: self = .setDirection(false)
    case .std: self = .setDirection(true)
    case .swapgs where mode == .long64: self = .swapGS
    case .in, .out: self = .portIO
    case .syscall where mode == .long64: self = .privilegeTransfer(.syscall)
    case .sysret where mode == .long64 && ins.operandSize == 8: self = .privilegeTransfer(.sysret)
    case .iret where mode == .long64 && ins.operandSize == 8: self = .privilegeTransfer(.iret)
    default: return nil
    }
  }
}
