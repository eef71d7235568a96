/// Entering the guest kernel at a handler it registered, the way Xen's "bounce frames" do: an
/// exception the monitor reflects, an event upcall, a system call of guest user code.
///
/// The frame, on the guest kernel's stack (the current one when the guest is in kernel mode,
/// aligned down to 16 bytes), from the lowest address: RCX, R11, [error code], RIP, CS, RFLAGS,
/// RSP, SS. The handler pops RCX and R11 and finds an interrupt frame; it returns through
/// `HYPERVISOR_iret`. RFLAGS.IF in the frame is the virtual interrupt flag (`vcpu_info`'s
/// upcall mask, inverted).
extension ParavirtDomain {
  /// Builds the frame for `vcpu` and enters `handler`; with `maskEvents` the vCPU's upcall mask
  /// is set (handlers of event upcalls and of traps registered with the "disable events" flag).
  /// -EFAULT when the stack cannot take the frame (the caller then treats the guest as crashed).
  func bounce(_ vcpu: HypercallCaller, to handler: UInt64, errorCode: UInt64? = nil, maskEvents: Bool)
    throws(HypercallFailure)
  {
    var r: Registers
    do {
      r = try vcpu.vcpu.registers()
    } catch {
      throw HypercallFailure(.fault)
    }
    let s: SpecialRegisters
    do {
      s = try vcpu.vcpu.specialRegisters()
    } catch {
      throw HypercallFailure(.fault)
    }
    var frame: [UInt64] = [r.rcx, r.r11]
    if let errorCode { frame.append(errorCode) }
    frame += [r.rip, UInt64(s.cs.selector), r.rflags, r.rsp, UInt64(s.ss.selector)]
    let top = r.rsp & ~0xF
    let base = top &- UInt64(frame.count * 8)
    var bytes: [UInt8] = []
    for word in frame { bytes += (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
    try write(bytes, at: base, for: vcpu)
    r.rsp = base
    r.rip = handler
    r.rflags &= ~(1 << 8 | 1 << 16)  // TF, RF
    do {
      try vcpu.vcpu.setRegisters(r)
    } catch {
      throw HypercallFailure(.fault)
    }
    if maskEvents { setUpcallMask(vcpu.index, true) }
  }
}
