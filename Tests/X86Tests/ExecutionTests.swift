import Testing
import X86

@Suite struct ExecutionTests {
  /// Runs `count` instructions, expecting no event.
  func run(_ cpu: CPU, _ count: Int = 1) {
    for _ in 0..<count {
      if let e = cpu.step() { Issue.record("unexpected event \(e)") }
    }
  }

  @Test func addSetsFlagsAndZeroExtends() {
    let (cpu, _) = makeCPU64([0x01, 0xD8])  // add eax, ebx
    cpu.state.setGPR(Reg.rax, 0xFFFF_FFFF_FFFF_FFFF)
    cpu.state.setGPR(Reg.rbx, 1)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0)
    #expect(cpu.state.rflags & (Flags.zf | Flags.cf | Flags.af | Flags.pf) == Flags.zf | Flags.cf | Flags.af | Flags.pf)
    #expect(cpu.state.rip == 0x1002)
  }

  @Test func shiftFlagsForCountsZeroOneAndWidth() {
    // shl eax, 0 leaves flags alone; shl eax, 1 sets CF/OF; shl al, 8 shifts everything out.
    let (cpu, _) = makeCPU64([0xC1, 0xE0, 0x00, 0xD1, 0xE0, 0xC0, 0xE1, 0x08])
    cpu.state.rflags |= Flags.cf | Flags.zf
    cpu.state.setGPR(Reg.rax, 0x8000_0001)
    cpu.state.setGPR(Reg.rcx, 0x01)
    run(cpu)
    #expect(cpu.state.rflags & (Flags.cf | Flags.zf) == Flags.cf | Flags.zf)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 2)
    #expect(cpu.state.rflags & Flags.cf != 0 && cpu.state.rflags & Flags.of != 0)
    run(cpu)  // shl cl, 8
    #expect(cpu.state.gpr(Reg.rcx) == 0)
    #expect(cpu.state.rflags & Flags.cf != 0 && cpu.state.rflags & Flags.zf != 0)
  }

  @Test func rotateThroughCarry() {
    let (cpu, _) = makeCPU64([0xD0, 0xD0, 0xD0, 0xD8])  // rcl al, 1; rcr al, 1
    cpu.state.setGPR(Reg.rax, 0x80)
    cpu.state.rflags |= Flags.cf
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0x01)
    #expect(cpu.state.rflags & Flags.cf != 0)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0x80)
    #expect(cpu.state.rflags & Flags.cf != 0)
  }

  @Test func divideErrors() {
    let (cpu, _) = makeCPU64([0xF7, 0xF3])  // div ebx
    cpu.state.setGPR(Reg.rdx, 1)
    cpu.state.setGPR(Reg.rbx, 1)
    #expect(cpu.step() == .exception(vector: 0, errorCode: nil))
    #expect(cpu.state.rip == 0x1000)
    let (c2, _) = makeCPU64([0x48, 0xF7, 0xFB])  // idiv rbx: INT64_MIN / -1
    c2.state.setGPR(Reg.rax, 0x8000_0000_0000_0000)
    c2.state.setGPR(Reg.rdx, 0xFFFF_FFFF_FFFF_FFFF)
    c2.state.setGPR(Reg.rbx, 0xFFFF_FFFF_FFFF_FFFF)
    #expect(c2.step() == .exception(vector: 0, errorCode: nil))
    let (c3, _) = makeCPU64([0x48, 0xF7, 0xFB])  // idiv rbx: -7 / 2
    c3.state.setGPR(Reg.rax, UInt64(bitPattern: -7))
    c3.state.setGPR(Reg.rdx, ~0)
    c3.state.setGPR(Reg.rbx, 2)
    run(c3)
    #expect(c3.state.gpr(Reg.rax) == UInt64(bitPattern: -3) && c3.state.gpr(Reg.rdx) == UInt64(bitPattern: -1))
  }

  @Test func bsfOfZeroKeepsDestination() {
    let (cpu, _) = makeCPU64([0x0F, 0xBC, 0xC3])  // bsf eax, ebx
    cpu.state.setGPR(Reg.rax, 0x1234)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0x1234)
    #expect(cpu.state.rflags & Flags.zf != 0)
  }

  @Test func cmpxchg16bNeedsAlignment() {
    let (cpu, _) = makeCPU64([0xF0, 0x48, 0x0F, 0xC7, 0x0E])  // lock cmpxchg16b [rsi]
    cpu.state.setGPR(Reg.rsi, 0x2008)
    #expect(cpu.step() == .exception(vector: 13, errorCode: 0))
  }

  @Test func lockOnRegisterIsUndefined() {
    let (cpu, _) = makeCPU64([0xF0, 0x01, 0xC0])
    #expect(cpu.step() == .exception(vector: 6, errorCode: nil))
  }

  @Test func repMovsBackwards() {
    let (cpu, ram) = makeCPU64([0xFD, 0xF3, 0xA4])  // std; rep movsb
    ram.load([1, 2, 3], at: 0x3000)
    cpu.state.setGPR(Reg.rsi, 0x3002)
    cpu.state.setGPR(Reg.rdi, 0x4002)
    cpu.state.setGPR(Reg.rcx, 3)
    run(cpu)
    var steps = 0
    while cpu.state.rip != 0x1003 && steps < 10 {
      run(cpu)
      steps += 1
    }
    #expect(steps == 3)
    #expect([ram.byte(0x4000), ram.byte(0x4001), ram.byte(0x4002)] == [1, 2, 3])
    #expect(cpu.state.gpr(Reg.rcx) == 0 && cpu.state.gpr(Reg.rsi) == 0x2FFF && cpu.state.gpr(Reg.rdi) == 0x3FFF)
  }

  @Test func pushPopCallRet() {
    // push 0x12; pop rbx; call +0; ret (returns to the address after the call)
    let (cpu, ram) = makeCPU64([0x6A, 0x12, 0x5B, 0xE8, 0x00, 0x00, 0x00, 0x00, 0xC3])
    run(cpu, 2)
    #expect(cpu.state.gpr(Reg.rbx) == 0x12 && cpu.state.gpr(Reg.rsp) == 0x8000)
    run(cpu)
    #expect(cpu.state.rip == 0x1008 && ram.qword(0x7FF8) == 0x1008)
    run(cpu)
    #expect(cpu.state.rip == 0x1008 && cpu.state.gpr(Reg.rsp) == 0x8000)
  }

  @Test func portIOReplays() {
    let (cpu, _) = makeCPU64([0xE4, 0x60])  // in al, 0x60 at CPL 3 with IOPL 0: #GP
    #expect(cpu.step() == .exception(vector: 13, errorCode: 0))
    let (real, _) = makeCPUReal(.i80386, [0xE4, 0x60, 0xE6, 0x61])
    #expect(real.step() == .portIn(port: 0x60, size: 1))
    real.complete(value: 0xAB)
    #expect(real.step() == nil)
    #expect(real.state.gpr(Reg.rax) & 0xFF == 0xAB)
    #expect(real.step() == .portOut(port: 0x61, size: 1, value: 0xAB))
    #expect(real.state.rip == 0x102)
    #expect(real.step() == nil)
    #expect(real.state.rip == 0x104)
  }

  @Test func selfModifyingCodeInvalidatesTheDecodeCache() {
    // 0x1000: mov byte ptr [rip + 2], 5   (patches the immediate of the add below)
    // 0x1007: add eax, 1
    let (cpu, _) = makeCPU64([0xC6, 0x05, 0x02, 0, 0, 0, 0x05, 0x83, 0xC0, 0x01])
    cpu.state.rip = 0x1007
    run(cpu)  // decodes and caches "add eax, 1"
    #expect(cpu.state.gpr(Reg.rax) == 1)
    cpu.state.rip = 0x1000
    run(cpu, 2)
    #expect(cpu.state.gpr(Reg.rax) == 6)
  }

  @Test func mmioReadsAndWritesReplay() {
    // Real mode with DS based at 3 MiB, beyond the 2 MiB of test RAM: MMIO.
    // mov eax, [0]; mov [4], ebx   (66-prefixed 32-bit operands)
    let (cpu, _) = makeCPUReal(.host64, [0x66, 0xA1, 0, 0, 0x66, 0x89, 0x1E, 4, 0])
    cpu.state.setSegment(.ds, SegmentCache(selector: 0x3000, base: 0x30_0000, limit: 0xFFFF, attributes: 0x93))
    cpu.state.setGPR(Reg.rbx, 0xCAFE)
    #expect(cpu.step() == .mmioRead(address: 0x30_0000, size: 4))
    #expect(cpu.state.rip == 0x100)
    cpu.complete(value: 0x1122_3344)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) == 0x1122_3344)
    #expect(cpu.step() == .mmioWrite(address: 0x30_0004, size: 4, value: 0xCAFE))
    #expect(cpu.step() == nil)
    #expect(cpu.state.rip == 0x109)
  }

  @Test func flatUserModeHasNoMMIOOnlyNotPresentPages() {
    // mov eax, [0x300000]; add [0x300000], ebx  (beyond the test RAM)
    let (cpu, _) = makeCPU64([0x8B, 0x04, 0x25, 0, 0, 0x30, 0, 0x01, 0x1C, 0x25, 0, 0, 0x30, 0])
    #expect(cpu.step() == .exception(vector: 14, errorCode: 4))
    #expect(cpu.state.cr2 == 0x30_0000)
    cpu.state.rip = 0x1007
    // A read-modify-write faults as a write, like hardware.
    #expect(cpu.step() == .exception(vector: 14, errorCode: 6))
  }

  @Test func bmiInstructions() {
    // andn eax, ecx, edx; pdep rax, rbx, rcx (mask in rcx); mulx rax, rbx, rcx (rdx * rcx)
    let (cpu, _) = makeCPU64([0xC4, 0xE2, 0x70, 0xF2, 0xC2, 0xC4, 0xE2, 0xE3, 0xF5, 0xC1, 0xC4, 0xE2, 0xE3, 0xF6, 0xC1])
    cpu.state.setGPR(Reg.rcx, 0xF0F0)
    cpu.state.setGPR(Reg.rdx, 0xFFFF)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0x0F0F)
    cpu.state.setGPR(Reg.rbx, 0b101)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0x0050)  // bits 0 and 2 of rbx deposited at mask bits 4 and 6
    cpu.state.setGPR(Reg.rdx, 1 << 63)
    cpu.state.setGPR(Reg.rcx, 4)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 2 && cpu.state.gpr(Reg.rbx) == 0)
  }

  @Test func farJumpIntoA32BitCodeSegmentSwitchesTheCodeMode() {
    // GDT at 0x500: null, 32-bit flat code (0x08). Real mode: lgdt [0x600]; mov eax, cr0; or al, 1;
    // mov cr0, eax; jmp 0x08:0x2000. At 0x2000 (32-bit): mov eax, 0x12345678.
    let ram = TestRAM()
    ram.load([0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0x9B, 0xCF, 0], at: 0x500)
    ram.load([0x0F, 0x00, 0x00, 0x05, 0x00, 0x00], at: 0x600)  // limit 15, base 0x500
    let code: [UInt8] = [
      0x0F, 0x01, 0x16, 0x00, 0x06,  // lgdt [0x600]
      0x0F, 0x20, 0xC0,  // mov eax, cr0
      0x0C, 0x01,  // or al, 1
      0x0F, 0x22, 0xC0,  // mov cr0, eax
      0x66, 0xEA, 0x00, 0x20, 0x00, 0x00, 0x08, 0x00,  // jmp dword 0x08:0x2000
    ]
    ram.load(code, at: 0x100)
    ram.load([0xB8, 0x78, 0x56, 0x34, 0x12], at: 0x2000)
    let cpu = CPU(model: .i80386, memory: ram)
    cpu.resetReal(cs: 0, ip: 0x100)
    run(cpu, 5)
    #expect(cpu.state.codeMode == .bits32)
    #expect(cpu.state.rip == 0x2000)
    run(cpu)
    #expect(cpu.state.gpr(Reg.rax) == 0x1234_5678)
  }

  @Test func vmcallRetiresThenReportsAHypercall() {
    let (cpu, _) = makeCPU64([0x0F, 0x01, 0xC1, 0x90])
    #expect(cpu.step() == .exception(vector: 6, errorCode: nil))  // flat-user oracle mode: #UD like the host
    let (real, _) = makeCPUReal(.host64, [0x0F, 0x01, 0xC1, 0x90])
    #expect(real.step() == .hypercall)
    #expect(real.state.rip == 0x103)
    #expect(real.step() == nil)
    // At CPL 3 as well (VMCALL exits whatever the privilege level; the VMM decides).
    let (user, _) = makeCPUReal(.host64, [0x0F, 0x01, 0xC1, 0x90])
    user.state.cpl = 3
    #expect(user.step() == .hypercall)
    #expect(user.state.rip == 0x103)
  }

  @Test func repMovsForwardOverlapAndPageCrossing() {
    // rep movsb with rdi = rsi + 1 replicates the first byte (element-by-element semantics), across
    // a page boundary; then rep stosq.
    let (cpu, ram) = makeCPU64([0xF3, 0xA4, 0xF3, 0x48, 0xAB])
    ram.load([0x5A], at: 0x3F00)
    cpu.state.setGPR(Reg.rsi, 0x3F00)
    cpu.state.setGPR(Reg.rdi, 0x3F01)
    cpu.state.setGPR(Reg.rcx, 0x200)
    var steps = 0
    while cpu.state.rip == 0x1000 && steps < 0x300 {
      run(cpu)
      steps += 1
    }
    #expect(ram.byte(0x3F01) == 0x5A && ram.byte(0x4000) == 0x5A && ram.byte(0x4100) == 0x5A)
    #expect(ram.byte(0x4101) == 0)
    #expect(cpu.state.gpr(Reg.rcx) == 0 && cpu.state.gpr(Reg.rdi) == 0x4101 && cpu.state.gpr(Reg.rsi) == 0x4100)
    cpu.state.setGPR(Reg.rax, 0x1122_3344_5566_7788)
    cpu.state.setGPR(Reg.rdi, 0x5000)
    cpu.state.setGPR(Reg.rcx, 3)
    while cpu.state.rip == 0x1002 && steps < 0x400 {
      run(cpu)
      steps += 1
    }
    #expect(ram.qword(0x5010) == 0x1122_3344_5566_7788 && ram.qword(0x5018) == 0)
    #expect(cpu.state.gpr(Reg.rdi) == 0x5018 && cpu.state.rip == 0x1005)
  }
}

/// REP MOVS with the destination less than one element after the source copies element by
/// element (each element re-reads bytes the previous one wrote), as the host CPU does; found by
/// a 10-million-instruction difftest run against the bulk-copy fast path.
@Test(arguments: [1, 3, 4, 9])
func repMovsdWithOverlapCopiesElementByElement(distance: Int) {
  let (cpu, ram) = makeCPU64([0xF3, 0xA5])  // rep movsd
  for i in 0..<64 { ram.load([UInt8(i)], at: 0x3000 + i) }
  var expected = (0..<64).map { UInt8($0) }
  let dstOffset = 32  // aligned, as the bulk-copy path requires
  for k in 0..<6 {
    let src = dstOffset - distance + 4 * k
    let dst = dstOffset + 4 * k
    let element = Array(expected[src..<src + 4])
    expected.replaceSubrange(dst..<dst + 4, with: element)
  }
  cpu.state.setGPR(Reg.rsi, 0x3000 + UInt64(dstOffset - distance))
  cpu.state.setGPR(Reg.rdi, 0x3000 + UInt64(dstOffset))
  cpu.state.setGPR(Reg.rcx, 6)
  for _ in 0..<10 where cpu.state.gpr(Reg.rcx) != 0 { #expect(cpu.step() == nil) }
  #expect(cpu.state.gpr(Reg.rcx) == 0)
  #expect((0..<64).map { ram.byte(0x3000 + $0) } == expected)
}

/// REP STOS of every width with an element whose bytes are all equal (one memset) and one whose
/// bytes differ (a loop per width), and REP MOVSQ between buffers apart (one memcpy): the bytes
/// the element-by-element definition gives, and nothing past the end.
@Test(arguments: [
  ([0xF3, 0xAA] as [UInt8], 1, 0x77 as UInt64), ([0x66, 0xF3, 0xAB], 2, 0x4242), ([0x66, 0xF3, 0xAB], 2, 0x1234),
  ([0xF3, 0xAB], 4, 0x0909_0909), ([0xF3, 0xAB], 4, 0x1122_3344), ([0xF3, 0x48, 0xAB], 8, 0),
  ([0xF3, 0x48, 0xAB], 8, 0x0102_0304_0506_0708),
])
func repStosFillsElementByElement(code: [UInt8], size: Int, value: UInt64) {
  let (cpu, ram) = makeCPU64(code)
  cpu.state.setGPR(Reg.rax, size == 8 ? value : value | (0xEE << (8 * UInt64(size))))  // bits above the element ignored
  cpu.state.setGPR(Reg.rdi, 0x3000)
  cpu.state.setGPR(Reg.rcx, 40)
  for _ in 0..<50 where cpu.state.gpr(Reg.rcx) != 0 { #expect(cpu.step() == nil) }
  let element = (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
  #expect((0..<40 * size).map { ram.byte(0x3000 + $0) } == Array(repeating: element, count: 40).flatMap { $0 })
  #expect(ram.byte(0x3000 + 40 * size) == 0)
  #expect(cpu.state.gpr(Reg.rdi) == 0x3000 + 40 * UInt64(size))
}

@Test func repMovsqBetweenBuffersApartCopiesThem() {
  let (cpu, ram) = makeCPU64([0xF3, 0x48, 0xA5])  // rep movsq
  for i in 0..<256 { ram.load([UInt8(i)], at: 0x3000 + i) }
  cpu.state.setGPR(Reg.rsi, 0x3000)
  cpu.state.setGPR(Reg.rdi, 0x3400)
  cpu.state.setGPR(Reg.rcx, 32)
  for _ in 0..<40 where cpu.state.gpr(Reg.rcx) != 0 { #expect(cpu.step() == nil) }
  #expect((0..<256).map { ram.byte(0x3400 + $0) } == (0..<256).map { UInt8($0) })
  #expect(ram.byte(0x3500) == 0)
  #expect(cpu.state.gpr(Reg.rsi) == 0x3100 && cpu.state.gpr(Reg.rdi) == 0x3500)
}
