/// Entering the guest kernel at a handler it registered, the way Xen's "bounce frames" do: an
/// exception the monitor reflects, an event upcall, a system call of guest user code.
///
/// The frame, on the guest kernel's stack (aligned down to 16 bytes), from the lowest address:
/// RCX, R11, [error code], RIP, CS, RFLAGS, RSP, SS. The handler pops RCX and R11 and finds an
/// interrupt frame; it returns through `HYPERVISOR_iret`. RFLAGS.IF in the frame is the virtual
/// interrupt flag (`vcpu_info`'s upcall mask, inverted).
///
/// A guest kernel at ring 0 gets the frame on its current stack with its own CS and SS. In the
/// deprivileged mode the frame's CS shows 0xE030 (RPL 0) for guest kernel mode and 0xE033 for
/// guest user mode, SS 0xE02B; an entry from user mode first switches to kernel mode: the root
/// table `kernelBasePointer`, the stack `kernelStackPointer`, the kernel's GS base (as SWAPGS).
extension ParavirtDomain {
  /// Builds the frame for `vcpu` and enters `handler`; with `maskEvents` the vCPU's upcall mask
  /// is set (handlers of event upcalls and of traps registered with the "disable events" flag).
  /// -EFAULT when the stack cannot take the frame (the caller then treats the guest as crashed).
  func bounce(_ vcpu: HypercallCaller, to handler: UInt64, errorCode: UInt64? = nil, maskEvents: Bool)
    throws(HypercallFailure)
  {
    var r: Registers
    var s: SpecialRegisters
    do {
      r = try vcpu.vcpu.registers()
      s = try vcpu.vcpu.specialRegisters()
    } catch {
      throw HypercallFailure(.fault)
    }
    var cs = UInt64(s.cs.selector)
    var ss = UInt64(s.ss.selector)
    var flags = r.rflags
    var stack = r.rsp
    if let monitor {
      let index = vcpu.index
      let kernel = vcpus[index].inKernelMode
      cs = UInt64(kernel ? ParavirtMonitor.Selector.kernelFrameCode : ParavirtMonitor.Selector.guestCode)
      ss = UInt64(ParavirtMonitor.Selector.guestData)
      flags = flags & ~(1 << 9) | (isUpcallMasked(index) ? 0 : 1 << 9)
      if !kernel {
        s.cr3 = vcpus[index].kernelBasePointer
        swap(&s.gs.base, &monitor.vcpus[index].inactiveGSBase)
        vcpus[index].inKernelMode = true
        stack = vcpus[index].kernelStackPointer
        do {
          try vcpu.vcpu.setSpecialRegisters(s)
          try dropEngineShadowsIfTablesChanged(vcpu.vcpu)
        } catch { throw HypercallFailure(.fault) }
      }
    }
    var frame: [UInt64] = [r.rcx, r.r11]
    if let errorCode { frame.append(errorCode) }
    frame += [r.rip, cs, flags, r.rsp, ss]
    let top = stack & ~0xF
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
