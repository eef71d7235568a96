/// Raising exceptions: the single exception-delivery point and real-mode IVT delivery.
extension CPU {
  /// The single exception-delivery point. Reported to the embedder when `reportExceptions` is set
  /// or the vector is in `exceptionTrapBitmap`; otherwise delivered: through the IVT in real mode,
  /// through the IDT in protected and long mode. A fault while delivering becomes a double fault,
  /// and a fault while delivering that a triple fault.
  func raise(vector: UInt8, errorCode: UInt32?, nextRIP: UInt64) -> CPUEvent? {
    if vector == ExceptionVector.unimplemented { return .internalError(unimplementedDescription(errorCode)) }
    if reportExceptions || (vector < 32 && exceptionTrapBitmap & (1 << UInt32(vector)) != 0) {
      return .exception(vector: vector, errorCode: errorCode)
    }
    if !isRealMode {
      return deliverProtected(vector: vector, errorCode: errorCode, kind: .exception, returnRIP: state.rip)
    }
    let returnIP = (model == .i8086 && vector == 0) ? nextRIP : state.rip
    do throws(Fault) {
      try deliverReal(vector: vector, returnIP: returnIP)
    } catch {
      if case .event(let e) = error { return e }
      // A fault while delivering: double fault, then shutdown.
      if vector == 8 { return .tripleFault }
      return raise(vector: 8, errorCode: 0, nextRIP: nextRIP)
    }
    return nil
  }

  /// The one real-mode delivery routine (exceptions, INT n and external interrupts) through the IVT
  /// (SDM vol. 3, "Exception and Interrupt Handling in Real-Address Mode"): push FLAGS, CS, IP;
  /// clear IF, TF, AC and RF; load CS:IP from the IVT. The 8086 has no IVT limit; later models
  /// raise #GP when the vector's entry lies beyond IDTR.limit.
  func deliverReal(vector: UInt8, returnIP: UInt64) throws(Fault) {
    let entry = UInt64(vector) * 4
    if model != .i8086 && entry + 3 > UInt64(state.idtr.limit) { throw Fault.generalProtection(UInt32(entry) + 2) }
    let ip = try readLinear(state.idtr.base &+ entry, size: 2)
    let cs = try readLinear(state.idtr.base &+ entry + 2, size: 2)
    var sp = stackPointer()
    sp = try pushValue(flagsImage() & 0xFFFF, size: 2, from: sp)
    sp = try pushValue(UInt64(state.segmentSelector(1)), size: 2, from: sp)
    sp = try pushValue(returnIP & 0xFFFF, size: 2, from: sp)
    setStackPointer(sp)
    state.rflags &= ~(Flags.if | Flags.tf | Flags.ac | Flags.rf)
    try loadSegment(1, selector: UInt16(cs))
    state.rip = ip
  }
}
