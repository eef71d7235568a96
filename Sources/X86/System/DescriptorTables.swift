/// Descriptor lookup through GDTR, LDTR and IDTR with the table-limit checks of SDM vol. 3,
/// "Segment Descriptor Tables" and "Interrupt Descriptor Table (IDT)". All table accesses are
/// implicit supervisor accesses.
public enum DescriptorTables {
  /// Linear address of the descriptor `selector` names (`size` 8, or 16 for IA-32e system
  /// descriptors). Throws #GP(selector, EXT) when it lies beyond the table limit or the LDT is
  /// unusable.
  public static func locate(
    _ selector: SegmentSelector, size: Int = 8, state: CPUState, external: Bool = false
  ) throws(Fault) -> UInt64 {
    let base: UInt64
    let limit: UInt64
    if selector.isLocal {
      let ldtr = state.segment(.ldtr)
      guard ldtr.attributes & SegmentAttributes.present != 0, ldtr.selector & 0xFFFC != 0 else {
        throw .gp(SelectorErrorCode.selector(selector.raw, external: external))
      }
      base = ldtr.base
      limit = UInt64(ldtr.limit)
    } else {
      base = state.gdtr.base
      limit = UInt64(state.gdtr.limit)
    }
    guard selector.tableOffset + UInt64(size) - 1 <= limit else {
      throw .gp(SelectorErrorCode.selector(selector.raw, external: external))
    }
    return base &+ selector.tableOffset
  }

  /// Reads the 8-byte descriptor of `selector`; returns it with its linear address.
  public static func read(
    _ selector: SegmentSelector, state: CPUState, memory: some SystemMemoryAccess, external: Bool = false
  ) throws(Fault) -> (descriptor: SegmentDescriptor, address: UInt64) {
    let address = try locate(selector, state: state, external: external)
    let raw = try memory.readLinear(address, size: 8, supervisor: true)
    return (SegmentDescriptor(raw: raw), address)
  }

  /// Reads a 16-byte IA-32e system descriptor (LDT, TSS, call gate) of `selector`.
  public static func readSystem16(
    _ selector: SegmentSelector, state: CPUState, memory: some SystemMemoryAccess, external: Bool = false
  ) throws(Fault) -> (descriptor: SystemDescriptor, address: UInt64) {
    let address = try locate(selector, size: 16, state: state, external: external)
    let low = try memory.readLinear(address, size: 8, supervisor: true)
    let high = try memory.readLinear(address &+ 8, size: 8, supervisor: true)
    return (SystemDescriptor(low: low, high: high), address)
  }

  /// Sets the accessed bit of the code/data descriptor at `address` if it is clear (SDM vol. 3,
  /// "Segment Descriptors": the processor sets it when loading a segment register).
  public static func markAccessed(
    _ descriptor: SegmentDescriptor, at address: UInt64, memory: some SystemMemoryAccess
  ) throws(Fault) {
    guard !descriptor.accessed else { return }
    let byte = (descriptor.raw >> 40) & 0xFF | 1
    try memory.writeLinear(address &+ 5, size: 1, value: byte, supervisor: true)
  }

  /// Reads IDT gate `vector`: 8 bytes in legacy protected mode, 16 in IA-32e mode. Throws
  /// #GP(vector*8+2+EXT) when the gate lies beyond the IDT limit.
  public static func readGate(
    _ vector: UInt8, long: Bool, state: CPUState, memory: some SystemMemoryAccess, external: Bool
  ) throws(Fault) -> GateDescriptor {
    let size: UInt64 = long ? 16 : 8
    let idtr = state.idtr
    let offset = UInt64(vector) * size
    guard offset + size - 1 <= UInt64(idtr.limit) else { throw .gp(SelectorErrorCode.idt(vector, external: external)) }
    let low = try memory.readLinear(idtr.base &+ offset, size: 8, supervisor: true)
    let high = long ? try memory.readLinear(idtr.base &+ offset &+ 8, size: 8, supervisor: true) : 0
    return GateDescriptor(low: low, high: high)
  }
}
