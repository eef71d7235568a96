/// Decodes x86 machine code into `DecodedInstruction`s.
public enum Decoder {
  /// Decodes one instruction from `bytes` in code mode `mode` for a modern x86-64 CPU.
  public static func decode(_ bytes: UnsafeRawBufferPointer, mode: CodeMode) -> DecodeResult {
    decode(bytes, mode: mode, model: .host64)
  }

  /// Decodes one instruction for a given CPU model (8086/286 aliases and missing opcodes).
  public static func decode(_ bytes: UnsafeRawBufferPointer, mode: CodeMode, model: CPUModel) -> DecodeResult {
    var reader = ByteReader(bytes: bytes)
    var ins = DecodedInstruction()
    switch decodeInto(&ins, &reader, mode: mode, model: model) {
    case .ok: return .success(ins)
    case .undefined: return .undefined(length: max(1, min(reader.position, 15)))
    case .tooLong: return .tooLong
    case .truncated: return reader.position >= 15 ? .tooLong : .truncated
    }
  }

  /// Convenience for arrays.
  public static func decode(_ bytes: [UInt8], mode: CodeMode, model: CPUModel = .host64) -> DecodeResult {
    bytes.withUnsafeBytes { decode($0, mode: mode, model: model) }
  }

  enum Status { case ok, undefined, tooLong, truncated }

  struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    var truncated = false

    @inline(__always) mutating func next() -> UInt8 {
      guard position < bytes.count, position < 15 else {
        truncated = true
        position += 1
        return 0
      }
      let b = bytes[position]
      position += 1
      return b
    }
    @inline(__always) func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }
    mutating func imm(_ size: Int) -> UInt64 {
      var v: UInt64 = 0
      for k in 0..<size { v |= UInt64(next()) << (8 * k) }
      return v
    }
  }

  @inline(__always) static func signExtend(_ v: UInt64, bytes: Int) -> UInt64 {
    switch bytes {
    case 1: return UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: v)))
    case 2: return UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: v)))
    case 4: return UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: v)))
    default: return v
    }
  }

  static let nopEntry = OpcodeEntry("nop")
  static let pauseEntry = OpcodeEntry("pause")
  static let movsxdEntry = OpcodeEntry("movsxd Gv,Ed")
  static let sse38Entry = OpcodeEntry("sse Vx,Wx")
  static let sse3AEntry = OpcodeEntry("sse Vx,Wx,Ib")
  /// CRC32 Gy, Eb and CRC32 Gy, Ev (F2 0F 38 F0 and F1), run by the SSE executor.
  static let crc32ByteEntry = OpcodeEntry("sse Gy,Eb")
  static let crc32Entry = OpcodeEntry("sse Gy,Ev")
  static let allowed386TwoByte: Set<UInt8> = Set(
    [
      0x00, 0x01, 0x02, 0x03, 0x06, 0x20, 0x21, 0x22, 0x23, 0xA0, 0xA1, 0xA3, 0xA4, 0xA5, 0xA8, 0xA9, 0xAB, 0xAC, 0xAD,
      0xAF, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xBA, 0xBB, 0xBC, 0xBD, 0xBE, 0xBF,
    ] + Array(0x80...0x9F))

  static func decodeInto(
    _ ins: inout DecodedInstruction, _ r: inout ByteReader, mode: CodeMode, model: CPUModel
  ) -> Status {
    var segOverride: UInt8 = 0xFF
    var rex: UInt8 = 0
    var prefixes: Prefixes = []
    var lastRepIsF2 = false
    let legacyOnly = model.is16BitOnly
    var opcode: UInt8 = 0
    // Prefixes.
    while true {
      if r.position >= 15 { return .tooLong }
      guard let b = r.peek() else { return .truncated }
      switch b {
      case 0x26, 0x2E, 0x36, 0x3E:
        segOverride = (b >> 3) & 3
        prefixes.insert(.segment)
        rex = 0
      case 0x64,
        0x65 where !legacyOnly:
        segOverride = b == 0x64 ? 4 : 5
        prefixes.insert(.segment)
        rex = 0
      case 0x66 where !legacyOnly:
        prefixes.insert(.operandSize)
        rex = 0
      case 0x67 where !legacyOnly:
        prefixes.insert(.addressSize)
        rex = 0
      case 0xF0:
        prefixes.insert(.lock)
        rex = 0
      case 0xF1 where legacyOnly:
        prefixes.insert(.lock)
      case 0xF2:
        prefixes.insert(.repne)
        prefixes.remove(.rep)
        lastRepIsF2 = true
        rex = 0
      case 0xF3:
        prefixes.insert(.rep)
        prefixes.remove(.repne)
        lastRepIsF2 = false
        rex = 0
      case 0x40...0x4F where mode == .bits64:
        rex = b
      default:
        break
      }
      let isPrefix: Bool
      switch b {
      case 0x26, 0x2E, 0x36, 0x3E, 0xF0, 0xF2, 0xF3: isPrefix = true
      case 0x64, 0x65, 0x66, 0x67: isPrefix = !legacyOnly
      case 0xF1: isPrefix = legacyOnly
      case 0x40...0x4F: isPrefix = mode == .bits64
      default: isPrefix = false
      }
      if !isPrefix {
        opcode = b
        r.position += 1
        break
      }
      r.position += 1
    }
    _ = lastRepIsF2
    if rex != 0 {
      prefixes.insert(.rex)
      if rex & 8 != 0 { prefixes.insert(.rexW) }
      if rex & 4 != 0 { prefixes.insert(.rexR) }
      if rex & 2 != 0 { prefixes.insert(.rexX) }
      if rex & 1 != 0 { prefixes.insert(.rexB) }
    }
    let opsz = prefixes.contains(.operandSize)
    let adsz = prefixes.contains(.addressSize)
    var osize: Int
    let asize: Int
    switch mode {
    case .bits64:
      osize = rex & 8 != 0 ? 8 : (opsz ? 2 : 4)
      asize = adsz ? 4 : 8
    case .bits32:
      osize = opsz ? 2 : 4
      asize = adsz ? 2 : 4
    case .bits16:
      osize = opsz ? 4 : 2
      asize = adsz ? 4 : 2
    }

    // Opcode and table entry.
    var map: UInt8 = 0
    var entry: OpcodeEntry
    if opcode == 0x0F && model != .i8086 {
      map = 1
      opcode = r.next()
      if r.truncated { return .truncated }
      if opcode == 0x38 || opcode == 0x3A {
        if model != .host64 { return .undefined }
        map = opcode == 0x38 ? 2 : 3
        opcode = r.next()
        if r.truncated { return .truncated }
        if map == 2 && (opcode == 0xF0 || opcode == 0xF1) && !prefixes.contains(.repne) {
          entry = OpcodeEntry(opcode == 0xF0 ? "movbe Gv,M mem" : "movbe M,Gv mem")
          if opcode == 0xF0 {
            entry.specs = [.Gv, .M]
          } else {
            entry.specs = [.M, .Gv]
          }
        } else if map == 2 && (opcode == 0xF0 || opcode == 0xF1) && !prefixes.contains(.rep) {
          entry = opcode == 0xF0 ? crc32ByteEntry : crc32Entry  // F2 0F 38 F0/F1: CRC32 (SSE4.2)
        } else {
          guard let names = map == 2 ? OpcodeTables.map38[opcode] : OpcodeTables.map3A[opcode],
            !prefixes.contains(.rep) && !prefixes.contains(.repne),
            !(prefixes.contains(.operandSize) ? names.1 : names.0).isEmpty
          else { return .undefined }
          entry = map == 2 ? sse38Entry : sse3AEntry
        }
      } else {
        if model == .i80286 && ![0x00, 0x01, 0x02, 0x03, 0x06].contains(opcode) { return .undefined }
        if model == .i80386 && !allowed386TwoByte.contains(opcode) { return .undefined }
        entry = ParsedTables.twoByte[Int(opcode)]
      }
    } else {
      var op = opcode
      if model == .i8086 {
        switch op {
        case 0x0F: entry = OpcodeEntry("pop CS")
        case 0x60...0x6F:
          op = 0x70 | (op & 0xF)
          entry = ParsedTables.oneByte[Int(op)]
        case 0xC0, 0xC1, 0xC8, 0xC9:
          op = op + 2
          entry = ParsedTables.oneByte[Int(op)]
        default: entry = ParsedTables.oneByte[Int(op)]
        }
        opcode = op
      } else if model == .i80286 && (0x64...0x67).contains(op) {
        return .undefined
      } else {
        entry = ParsedTables.oneByte[Int(op)]
      }
    }
    ins.map = map
    ins.opcode = opcode

    // Mode-specific one-byte specials.
    if map == 0 {
      switch opcode {
      case 0x63 where mode == .bits64:
        entry = Decoder.movsxdEntry
      case 0x90:
        if prefixes.contains(.rexB) {
          break
        } else if prefixes.contains(.rep) {
          entry = Decoder.pauseEntry
        } else {
          entry = Decoder.nopEntry
        }
      case 0xC4, 0xC5:
        if model == .host64 && (mode == .bits64 || (mode == .bits32 && (r.peek() ?? 0) >= 0xC0)) {
          return decodeVEX(&ins, &r, vex3: opcode == 0xC4, prefixes: prefixes, segment: segOverride, mode: mode)
        }
      case 0xD6 where model == .i8086 || model == .i80286:
        entry.flags.remove(.undocumented)
      case 0x62 where model == .host64 && (mode == .bits64 || (r.peek() ?? 0) >= 0xC0):
        return decodeEVEX(&ins, &r, prefixes: prefixes, segment: segOverride, mode: mode)
      case 0x8F where mode != .bits16 || model == .host64:
        if let next = r.peek(), (next >> 3) & 7 != 0 { return .undefined }  // XOP
      default: break
      }
    }

    guard entry.isValid else { return .undefined }
    if mode == .bits64 && entry.flags.contains(.invalid64) { return .undefined }
    if mode != .bits64 && entry.flags.contains(.only64) { return .undefined }

    // ModRM.
    var needsModRM = entry.group >= 0 || entry.operation == .x87 || entry.operation == .sse
    for s in entry.specs where s.needsModRM { needsModRM = true }
    var modrm: UInt8 = 0
    if needsModRM {
      modrm = r.next()
      if r.truncated { return .truncated }
    }
    ins.modrm = modrm
    let mod = modrm >> 6
    let regField = (modrm >> 3) & 7

    // Groups.
    if entry.group >= 0 {
      let parent = entry
      let name = ParsedTables.groupNames[entry.group]
      if name == "grp11" && modrm == 0xF8 && model == .host64 {
        // C6 F8 ib / C7 F8 rel: TSX XABORT / XBEGIN (decoded; #UD, TSX is not advertised).
        entry = opcode == 0xC6 ? OpcodeEntry("xabort Ib") : OpcodeEntry("xbegin Jz")
      } else if let special = specialGroup(name, modrm: modrm, prefixes: prefixes, mode: mode, model: model) {
        guard let s = special else { return .undefined }
        entry = s
      } else {
        entry = ParsedTables.groups[entry.group][Int(regField)]
        if model == .i8086 && name == "grp5" && regField == 7 { entry = OpcodeEntry("push d64") }
        if model == .i8086 && name == "grp2" && regField == 6 { entry = OpcodeEntry("setmo") }
        if model == .i8086 && (name == "grp1a" || name == "grp11") { entry = ParsedTables.groups[parent.group][0] }
        if model != .host64 && entry.flags.contains(.undocumented) { entry.flags.remove(.undocumented) }
        guard entry.isValid else { return .undefined }
        if entry.specs.isEmpty { entry.specs = parent.specs }
        if entry.flags.contains(.addImmediate) {
          entry.specs.append(parent.specs.first == .Eb ? .Ib : .Iz)
        }
        entry.flags.formUnion(parent.flags.intersection([.invalid64, .needs186, .undocumented, .default64, .force64]))
      }
      ins.condition = regField
    } else if entry.operation == .jcc || entry.operation == .setcc || entry.operation == .cmovcc {
      ins.condition = opcode & 0xF
    }
    if model != .host64 { entry.flags.remove(.undocumented) }
    if entry.flags.contains(.memoryOnly) && mod == 3 { return .undefined }
    if entry.flags.contains(.registerOnly) && mod != 3 && needsModRM { return .undefined }

    // Two-byte specials depending on prefixes.
    var operation = entry.operation
    if map == 1 {
      switch opcode {
      case 0xB8:
        if !prefixes.contains(.rep) || model != .host64 { return .undefined }
      case 0xBC where prefixes.contains(.rep) && model == .host64: operation = .tzcnt
      case 0xBD where prefixes.contains(.rep) && model == .host64: operation = .lzcnt
      case 0x1E where prefixes.contains(.rep) && (modrm == 0xFA || modrm == 0xFB):
        operation = modrm == 0xFA ? .endbr64 : .endbr32
        entry.specs = []
      case 0x05, 0x07:
        if mode != .bits64 && opcode == 0x07 { return .undefined }
      case 0xD6 where (prefixes.contains(.rep) || prefixes.contains(.repne)) && mod != 3:
        return .undefined  // MOVQ2DQ/MOVDQ2Q move between registers only.
      case 0xC7 where entry.operation == .cmpxchg8b && prefixes.contains(.rexW):
        operation = .cmpxchg16b
        entry.specs = [.M]
      default: break
      }
    }

    // Operand size adjustments.
    if mode == .bits64 {
      if entry.flags.contains(.force64) {
        osize = 8
      } else if entry.flags.contains(.default64) {
        osize = rex & 8 != 0 ? 8 : (opsz ? 2 : 8)
      }
    } else if entry.flags.contains(.force64) || entry.flags.contains(.default64) {
      // Nothing: 16/32-bit modes use the normal operand size.
    }
    if opcode == 0xC4 || opcode == 0xC5 || (map == 1 && (opcode == 0xB2 || opcode == 0xB4 || opcode == 0xB5)) {
      if osize == 8 && model == .host64 && opcode >= 0xC4 { osize = 4 }
    }

    // Memory operand.
    var hasMem = false
    if needsModRM && mod != 3 && !entry.specs.contains(.Cd) && !entry.specs.contains(.Dd) {
      hasMem = true
      if asize == 2 {
        decodeModRM16(&ins, &r, modrm: modrm)
      } else {
        decodeModRM32(&ins, &r, modrm: modrm, rex: rex, asize: asize, mode: mode)
      }
      if r.truncated { return .truncated }
    }
    ins.segment = segOverride != 0xFF ? segOverride : ins.segment

    // Operands.
    let rexR: UInt8 = rex & 4 != 0 ? 8 : 0
    let rexB: UInt8 = rex & 1 != 0 ? 8 : 0
    let hasRex = rex != 0
    var ops = OperandList()
    var immCount = 0
    func gpr(_ n: UInt8, _ size: Int) -> Operand {
      if size == 1 && !hasRex && n >= 4 && n < 8 { return Operand(.gprHigh8, size: 1, reg: n - 4) }
      return Operand(.gpr, size: UInt8(size), reg: n)
    }
    func rm(_ size: Int) -> Operand {
      hasMem ? Operand(.memory, size: UInt8(size)) : gpr((modrm & 7) | rexB, size)
    }
    func takeImmediate(_ size: Int, signed: Bool, into op: inout Operand) {
      let v = r.imm(size)
      let value = signed ? signExtend(v, bytes: size) : v
      if immCount == 0 {
        ins.immediate = value
        op.reg = 0
      } else {
        ins.immediate2 = value
        op.reg = 1
      }
      immCount += 1
    }
    let immSizeZ = osize == 2 ? 2 : 4
    for spec in entry.specs {
      var o = Operand.none
      switch spec {
      case .none: continue
      case .Eb: o = rm(1)
      case .Ew: o = rm(2)
      case .Ed: o = rm(4)
      case .Eq: o = rm(8)
      case .Ev: o = rm(osize)
      case .Ey: o = rm(osize == 8 ? 8 : 4)
      case .Gb: o = gpr(regField | rexR, 1)
      case .Gw: o = gpr(regField | rexR, 2)
      case .Gd: o = gpr(regField | rexR, 4)
      case .Gv: o = gpr(regField | rexR, osize)
      case .Gy: o = gpr(regField | rexR, osize == 8 ? 8 : 4)
      case .Gz: o = gpr(regField | rexR, osize == 2 ? 2 : 4)
      case .Ib:
        o = Operand(.immediate, size: 1)
        takeImmediate(1, signed: false, into: &o)
      case .Iw:
        o = Operand(.immediate, size: 2)
        takeImmediate(2, signed: false, into: &o)
      case .Iz:
        o = Operand(.immediate, size: UInt8(osize))
        takeImmediate(immSizeZ, signed: true, into: &o)
      case .Iv:
        o = Operand(.immediate, size: UInt8(osize))
        takeImmediate(osize, signed: false, into: &o)
      case .Ibs:
        o = Operand(.immediate, size: UInt8(osize))
        takeImmediate(1, signed: true, into: &o)
      case .Jb:
        o = Operand(.relative, size: UInt8(osize))
        takeImmediate(1, signed: true, into: &o)
      case .Jz:
        o = Operand(.relative, size: UInt8(osize))
        takeImmediate(osize == 2 ? 2 : 4, signed: true, into: &o)
      case .M, .Mb: o = Operand(.memory, size: spec == .Mb ? 1 : UInt8(osize))
      case .Mw: o = Operand(.memory, size: 2)
      case .Md: o = Operand(.memory, size: 4)
      case .Mq: o = Operand(.memory, size: 8)
      case .My: o = Operand(.memory, size: osize == 8 ? 8 : 4)
      case .Mp: o = Operand(.memory, size: UInt8(osize + 2))
      case .Ms: o = Operand(.memory, size: mode == .bits64 ? 10 : 6)
      case .Ob, .Ov:
        let a = r.imm(asize)
        ins.displacement = Int64(bitPattern: a)
        ins.base = DecodedInstruction.noRegister
        ins.index = DecodedInstruction.noRegister
        ins.segment = segOverride != 0xFF ? segOverride : 3
        hasMem = true
        o = Operand(.memory, size: spec == .Ob ? 1 : UInt8(osize))
      case .Sw:
        if regField > 5 && model != .i8086 { return .undefined }
        if model == .i8086 {
          o = Operand(.segment, size: 2, reg: regField & 3)
        } else {
          if model == .i80286 && regField > 3 { return .undefined }
          o = Operand(.segment, size: 2, reg: regField)
        }
      case .AL: o = Operand(.gpr, size: 1, reg: 0)
      case .CL: o = Operand(.gpr, size: 1, reg: 1)
      case .DX: o = Operand(.gpr, size: 2, reg: 2)
      case .rAX: o = Operand(.gpr, size: UInt8(osize), reg: 0)
      case .eAX: o = Operand(.gpr, size: UInt8(osize == 2 ? 2 : 4), reg: 0)
      case .Zb: o = gpr((opcode & 7) | rexB, 1)
      case .Zv: o = gpr((opcode & 7) | rexB, osize)
      case .Zq: o = gpr((opcode & 7) | rexB, osize)
      case .Zy: o = gpr((opcode & 7) | rexB, osize == 8 ? 8 : 4)
      case .Ap:
        o = Operand(.farPointer, size: UInt8(osize + 2))
        ins.immediate = r.imm(osize == 2 ? 2 : 4)
        ins.immediate2 = r.imm(2)
        immCount = 2
      case .Cd:
        let n = regField | rexR
        if !(n == 0 || n == 2 || n == 3 || n == 4 || n == 8) { return .undefined }
        o = Operand(.control, size: mode == .bits64 ? 8 : 4, reg: n)
      case .Dd:
        if rexR != 0 { return .undefined }
        o = Operand(.debug, size: mode == .bits64 ? 8 : 4, reg: regField)
      case .Ry: o = Operand(.gpr, size: mode == .bits64 ? 8 : 4, reg: (modrm & 7) | rexB)
      case .Rv: o = Operand(.gpr, size: UInt8(osize), reg: (modrm & 7) | rexB)
      case .One:
        o = Operand(.immediate, size: 1)
        ins.immediate = 1
      case .Vx: o = Operand(.xmm, size: 16, reg: regField | rexR)
      case .Wx: o = hasMem ? Operand(.memory, size: 16) : Operand(.xmm, size: 16, reg: (modrm & 7) | rexB)
      case .Ux: o = Operand(.xmm, size: 16, reg: (modrm & 7) | rexB)
      case .ES, .CS, .SS, .DS, .FS, .GS:
        o = Operand(.segment, size: 2, reg: spec.rawValue - OperandSpec.ES.rawValue)
      case .Xb, .Xv, .Xz, .Yb, .Yv, .Yz:
        continue
      }
      ops.append(o)
    }
    if r.truncated { return .truncated }
    if r.position > 15 { return .tooLong }

    // String operations: the size comes from the b/v form.
    switch operation {
    case .movs, .cmps, .stos, .lods, .scas, .ins, .outs:
      let byteForm = opcode & 1 == 0
      osize = byteForm ? 1 : ((operation == .ins || operation == .outs) && osize == 8 ? 4 : osize)
      ops.removeAccumulatorAndDX()
    default: break
    }

    // Main operand size: the first operand's size for most operations.
    var mainSize = osize
    if let first = ops.first, first.kind == .gpr || first.kind == .gprHigh8 || first.kind == .memory {
      switch operation {
      case .movzx, .movsx, .movsxd, .movSeg, .movToSeg, .lea, .bound, .les, .lds, .lss, .lfs, .lgs,
        .movCR, .movToCR, .movDR, .movToDR, .cmpxchg8b, .cmpxchg16b, .sse, .x87, .callFar, .jmpFar:
        break
      default: mainSize = Int(first.size)
      }
    }
    if operation == .movSeg && hasMem { mainSize = 2 }
    if operation == .movToSeg { mainSize = 2 }

    ins.operation = operation
    ins.prefixes = prefixes
    if entry.flags.contains(.undocumented) { ins.prefixes.insert(.undocumented) }
    ins.operandSize = UInt8(mainSize)
    ins.addressSize = UInt8(asize)
    ins.operandCount = UInt8(ops.count)
    ins.operands = ops.items
    if operation == .sse && map == 1 { SSEOperandShapes.apply(to: &ins) }
    if operation == .sse && map >= 2 { SSEOperandShapes.applyThreeByteMap(to: &ins) }
    ins.length = UInt8(r.position)
    ins.hasMemoryOperand =
      hasMem || ops.items.0.kind == .memory || ops.items.1.kind == .memory || ops.items.2.kind == .memory

    // LOCK validity: lockable form with a memory destination.
    if prefixes.contains(.lock) {
      let lockable = entry.flags.contains(.lockable) && hasMem && ins.operands.0.kind == .memory
      if !lockable && !(model == .i8086) && model != .i80286 { return .undefined }
    }
    return .ok
  }

  /// Group opcodes whose meaning depends on mod/rm or prefixes. Returns nil when the normal
  /// reg-field table applies; `.some(nil)` for an invalid encoding.
  static func specialGroup(_ name: String, modrm: UInt8, prefixes: Prefixes, mode: CodeMode, model: CPUModel)
    -> OpcodeEntry??
  {
    let isReg = modrm >= 0xC0
    switch name {
    case "grp7" where isReg:
      switch modrm {
      case 0xC1, 0xD9: return OpcodeEntry("vmcall")
      case 0xC8: return OpcodeEntry("monitor")
      case 0xC9: return OpcodeEntry("mwait")
      case 0xCA: return OpcodeEntry("clac")
      case 0xCB: return OpcodeEntry("stac")
      case 0xD0: return OpcodeEntry("xgetbv")
      case 0xD1: return OpcodeEntry("xsetbv")
      case 0xD5: return OpcodeEntry("xend")
      case 0xD6: return OpcodeEntry("xtest")
      case 0xEE: return OpcodeEntry("rdpkru")
      case 0xEF: return OpcodeEntry("wrpkru")
      case 0xF8: return mode == .bits64 ? OpcodeEntry("swapgs") : .some(nil)
      case 0xF9: return OpcodeEntry("rdtscp")
      default:
        let reg = (modrm >> 3) & 7
        if reg == 4 { return OpcodeEntry("smsw Ev") }
        if reg == 6 { return OpcodeEntry("lmsw Ew") }
        return .some(nil)
      }
    case "grp9":
      let reg = (modrm >> 3) & 7
      if isReg {
        if reg == 6 { return OpcodeEntry("rdrand Rv") }
        if reg == 7 { return prefixes.contains(.rep) ? OpcodeEntry("rdpid Ry") : OpcodeEntry("rdseed Rv") }
        return .some(nil)
      }
      if reg == 1 { return OpcodeEntry("cmpxchg8b Mq L") }
      return .some(nil)
    case "grp15" where isReg:
      let reg = (modrm >> 3) & 7
      if prefixes.contains(.rep) && mode == .bits64 {
        switch reg {
        case 0: return OpcodeEntry("rdfsbase Ry")
        case 1: return OpcodeEntry("rdgsbase Ry")
        case 2: return OpcodeEntry("wrfsbase Ry")
        case 3: return OpcodeEntry("wrgsbase Ry")
        default: return .some(nil)
        }
      }
      if prefixes.contains(.rep) || prefixes.contains(.repne) || prefixes.contains(.operandSize) { return .some(nil) }
      switch reg {
      case 5: return OpcodeEntry("lfence")
      case 6: return OpcodeEntry("mfence")
      case 7: return OpcodeEntry("sfence")
      default: return .some(nil)
      }
    case "grp15":
      if prefixes.contains(.rep) || prefixes.contains(.repne) { return .some(nil) }
      return nil
    case "grp16" where isReg:
      return OpcodeEntry("nop Ev")
    case "grp11" where isReg && model == .host64:
      if modrm == 0xF8 { return .some(nil) }
      return nil
    default:
      return nil
    }
  }

  static let modrm16Base: [UInt8] = [3, 3, 5, 5, 6, 7, 5, 3]
  static let modrm16Index: [UInt8] = [6, 7, 6, 7, 0xFF, 0xFF, 0xFF, 0xFF]

  static func decodeModRM16(_ ins: inout DecodedInstruction, _ r: inout ByteReader, modrm: UInt8) {
    let mod = modrm >> 6
    let rm = Int(modrm & 7)
    if mod == 0 && rm == 6 {
      ins.base = DecodedInstruction.noRegister
      ins.index = DecodedInstruction.noRegister
      ins.displacement = Int64(Int16(truncatingIfNeeded: r.imm(2)))
      ins.segment = 3
      return
    }
    ins.base = modrm16Base[rm]
    ins.index = modrm16Index[rm]
    ins.scale = 1
    ins.segment = (rm == 2 || rm == 3 || rm == 6) ? 2 : 3
    if mod == 1 {
      ins.displacement = Int64(Int8(truncatingIfNeeded: r.next()))
    } else if mod == 2 {
      ins.displacement = Int64(Int16(truncatingIfNeeded: r.imm(2)))
    }
  }

  static func decodeModRM32(
    _ ins: inout DecodedInstruction, _ r: inout ByteReader, modrm: UInt8, rex: UInt8, asize: Int, mode: CodeMode
  ) {
    let mod = modrm >> 6
    let rm = modrm & 7
    let rexB: UInt8 = rex & 1 != 0 ? 8 : 0
    let rexX: UInt8 = rex & 2 != 0 ? 8 : 0
    ins.segment = 3
    ins.index = DecodedInstruction.noRegister
    ins.scale = 1
    if rm == 4 {
      let sib = r.next()
      let base = sib & 7
      let index = ((sib >> 3) & 7) | rexX
      ins.scale = 1 << (sib >> 6)
      if index != 4 { ins.index = index }
      if base == 5 && mod == 0 {
        ins.base = DecodedInstruction.noRegister
        ins.displacement = Int64(Int32(truncatingIfNeeded: r.imm(4)))
        return
      }
      ins.base = base | rexB
      if base == 4 || base == 5 { ins.segment = 2 }
    } else if rm == 5 && mod == 0 {
      ins.base = mode == .bits64 ? DecodedInstruction.ripBase : DecodedInstruction.noRegister
      ins.displacement = Int64(Int32(truncatingIfNeeded: r.imm(4)))
      return
    } else {
      ins.base = rm | rexB
      if rm == 5 { ins.segment = 2 }
    }
    if mod == 1 {
      ins.displacement = Int64(Int8(truncatingIfNeeded: r.next()))
    } else if mod == 2 {
      ins.displacement = Int64(Int32(truncatingIfNeeded: r.imm(4)))
    }
  }

  /// VEX-encoded instructions: the BMI1/BMI2 general-purpose forms are decoded; everything else
  /// (AVX) is #UD.
  static func decodeVEX(
    _ ins: inout DecodedInstruction, _ r: inout ByteReader, vex3: Bool, prefixes: Prefixes, segment: UInt8,
    mode: CodeMode
  ) -> Status {
    if !prefixes.intersection([.operandSize, .rep, .repne, .lock, .rex]).isEmpty { return .undefined }
    let b1 = r.next()
    var rexR = false
    var rexX = false
    var rexB = false
    var map: UInt8 = 1
    var w = false
    let b2: UInt8
    if vex3 {
      b2 = r.next()
      rexR = b1 & 0x80 == 0
      rexX = b1 & 0x40 == 0
      rexB = b1 & 0x20 == 0
      map = b1 & 0x1F
      w = b2 & 0x80 != 0
    } else {
      b2 = b1
      rexR = b1 & 0x80 == 0
    }
    let vvvv = (~b2 >> 3) & 0xF
    let l = b2 & 4 != 0
    let pp = b2 & 3
    let opcode = r.next()
    if r.truncated { return .truncated }
    let bmi = (map == 2 && [0xF2, 0xF3, 0xF5, 0xF6, 0xF7].contains(opcode)) || (map == 3 && opcode == 0xF0)
    if !bmi {
      var fields = VEXFields()
      fields.vvvv = mode == .bits64 ? vvvv : vvvv & 7
      fields.l = l
      fields.w = w
      fields.pp = pp
      let rex: UInt8 = mode == .bits64 ? (rexR ? 4 : 0) | (rexX ? 2 : 0) | (rexB ? 1 : 0) | (w ? 8 : 0) : 0
      return decodeAVX(
        &ins, &r, map: map, opcode: opcode, fields: fields, rex: rex, prefixes: prefixes, segment: segment, mode: mode)
    }
    let modrm = r.next()
    if r.truncated { return .truncated }
    let reg = (modrm >> 3) & 7
    let operation: Operation
    var form = 0  // 0: reg, vvvv, rm   1: reg, rm, vvvv   2: vvvv, rm   3: reg, rm, imm8
    switch (map, opcode, pp) {
    case (2, 0xF2, 0): operation = .andn
    case (2, 0xF3, 0):
      switch reg {
      case 1: operation = .blsr
      case 2: operation = .blsmsk
      case 3: operation = .blsi
      default: return .undefined
      }
      form = 2
    case (2, 0xF5, 0):
      operation = .bzhi
      form = 1
    case (2, 0xF5, 3): operation = .pdep
    case (2, 0xF5, 2): operation = .pext
    case (2, 0xF6, 3): operation = .mulx
    case (2, 0xF7, 0):
      operation = .bextr
      form = 1
    case (2, 0xF7, 1):
      operation = .shlx
      form = 1
    case (2, 0xF7, 2):
      operation = .sarx
      form = 1
    case (2, 0xF7, 3):
      operation = .shrx
      form = 1
    case (3, 0xF0, 3):
      if vvvv != 0 { return .undefined }  // VEX.vvvv must be 1111b
      operation = .rorx
      form = 3
    default: return .undefined
    }
    if l { return .undefined }
    let size: UInt8 = (mode == .bits64 && w) ? 8 : 4
    let rex: UInt8 = (rexR ? 4 : 0) | (rexX ? 2 : 0) | (rexB ? 1 : 0) | (w ? 8 : 0)
    let regOp = Operand(.gpr, size: size, reg: reg | (rexR && mode == .bits64 ? 8 : 0))
    let vOp = Operand(.gpr, size: size, reg: mode == .bits64 ? vvvv : vvvv & 7)
    var rmOp: Operand
    if modrm >= 0xC0 {
      rmOp = Operand(.gpr, size: size, reg: (modrm & 7) | (rexB && mode == .bits64 ? 8 : 0))
      if segment != 0xFF { ins.segment = segment }
    } else {
      decodeVectorMemory(
        &ins, &r, modrm: modrm, rex: mode == .bits64 ? rex : 0, prefixes: prefixes, segment: segment, mode: mode)
      rmOp = Operand(.memory, size: size)
    }
    switch form {
    case 0: ins.operands = (regOp, vOp, rmOp)
    case 1: ins.operands = (regOp, rmOp, vOp)
    case 2: ins.operands = (vOp, rmOp, .none)
    default:
      ins.immediate = UInt64(r.next())
      ins.operands = (regOp, rmOp, Operand(.immediate, size: 1))
    }
    if r.truncated { return .truncated }
    if r.position > 15 { return .tooLong }
    ins.operandCount = form == 2 ? 2 : 3
    ins.operation = operation
    ins.operandSize = size
    return finishVectorInstruction(&ins, r, prefixes: prefixes, map: map, opcode: opcode, modrm: modrm, mode: mode)
  }

  /// Up to three operands without heap allocation.
  struct OperandList {
    var items: (Operand, Operand, Operand) = (.none, .none, .none)
    var count = 0

    mutating func append(_ o: Operand) {
      switch count {
      case 0: items.0 = o
      case 1: items.1 = o
      case 2: items.2 = o
      default: return
      }
      count += 1
    }

    var first: Operand? { count > 0 ? items.0 : nil }

    /// String instructions: the implicit AL/eAX and DX operands are not listed.
    mutating func removeAccumulatorAndDX() {
      var kept = OperandList()
      func keep(_ o: Operand) { if !(o.kind == .gpr && (o.reg == 0 || o.reg == 2)) { kept.append(o) } }
      if count > 0 { keep(items.0) }
      if count > 1 { keep(items.1) }
      if count > 2 { keep(items.2) }
      self = kept
    }
  }
}
