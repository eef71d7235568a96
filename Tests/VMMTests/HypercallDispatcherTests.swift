import Testing

@testable import VMM

/// The hypercall ABI decoded once in the VMM: registers by the caller's mode, handlers by number.
@Suite struct HypercallDispatcherTests {
  static func registers() -> Registers {
    var r = Registers()
    r.rax = 0x1_0000_0011
    (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (1, 2, 3, 4, 5, 6)
    (r.rbx, r.rcx, r.rbp) = (0x1_0000_0007, 8, 9)
    return r
  }

  @Test func longModeCallsPassRAXAndTheSystemVRegisters() {
    var s = SpecialRegisters()
    s.efer = 0x500  // LME | LMA
    s.cs.l = true
    let call = HypercallDispatcher.decode(registers: Self.registers(), special: s)
    #expect(call == HypercallDispatcher.Call(number: 0x1_0000_0011, arguments: [1, 2, 3, 4, 5, 6], longMode: true))
  }

  @Test func thirtyTwoBitCallsPassEAXAndEBXToEBP() {
    var s = SpecialRegisters()
    s.efer = 0x500
    s.cs.l = false  // compatibility mode counts as 32-bit
    let call = HypercallDispatcher.decode(registers: Self.registers(), special: s)
    #expect(call == HypercallDispatcher.Call(number: 0x11, arguments: [7, 8, 3, 2, 1, 9], longMode: false))
  }

  @Test func unknownNumbersReturnENOSYSAndHandlersSeeTheirCall() throws {
    let d = HypercallDispatcher()
    let caller = HypercallCaller(index: 3, vcpu: ScriptedVirtualCPU())
    let long = HypercallDispatcher.Call(number: 99, arguments: [40, 2, 0, 0, 0, 0], longMode: true)
    #expect(try d.dispatch(long, caller: caller) == .value(UInt64(bitPattern: -38)))
    var seen: [Int] = []
    d.register(99) { call, caller in
      seen.append(caller.index)
      return .value(call.arguments[0] + call.arguments[1])
    }
    #expect(try d.dispatch(long, caller: caller) == .value(42))
    #expect(seen == [3])
    // A 32-bit caller gets a 32-bit result: -ENOSYS in EAX.
    let short = HypercallDispatcher.Call(number: 98, arguments: Array(repeating: 0, count: 6), longMode: false)
    #expect(try d.dispatch(short, caller: caller) == .value(0xFFFF_FFDA))
    #expect(d.counts == [99: 2, 98: 1])
  }
}
