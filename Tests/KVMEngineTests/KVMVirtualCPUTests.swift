import KVMEngine
import TestHostSupport
import Testing
import VMM

/// The kvm vCPU driven directly (no devices): every exit of `io_mmio.S` in order, with values,
/// completions of IN and MMIO reads, string I/O, HLT, a triple fault and kicks.
@Suite struct KVMVirtualCPUTests {
  @Test(.requires(.kvm)) func portAndMMIOExitsCarryTheGuestsValues() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.ioAndMMIO)
    func next() throws -> VMExit { try vcpu.run(budget: nil) }

    #expect(try next() == .io(PortAccess(port: 0x510, size: 1, isWrite: true, value: 0xAB)))
    #expect(try next() == .io(PortAccess(port: 0x510, size: 2, isWrite: true, value: 0x1234)))
    #expect(try next() == .io(PortAccess(port: 0x510, size: 4, isWrite: true, value: 0xDEAD_BEEF)))
    #expect(try next() == .io(PortAccess(port: 0x511, size: 4, isWrite: false)))
    try vcpu.complete(.value(0xCAFE_F00D))
    #expect(try next() == .io(PortAccess(port: 0x512, size: 4, isWrite: true, value: 0xCAFE_F00D)))
    #expect(try next() == .mmio(MMIOAccess(address: 0xD000_0000, size: 4, isWrite: true, value: 0x1234_5678)))
    #expect(try next() == .mmio(MMIOAccess(address: 0xD000_0008, size: 8, isWrite: false)))
    try vcpu.complete(.value(0x1122_3344_5566_7788))
    #expect(try next() == .mmio(MMIOAccess(address: 0xD000_0010, size: 8, isWrite: true, value: 0x1122_3344_5566_7788)))
    for c in "Triv".utf8 {
      #expect(try next() == .io(PortAccess(port: 0x513, size: 1, isWrite: true, value: UInt32(c))))
    }
    for answer: UInt64 in [0x1111, 0x2222] {
      #expect(try next() == .io(PortAccess(port: 0x514, size: 2, isWrite: false)))
      try vcpu.complete(.value(answer))
    }
    #expect(try next() == .io(PortAccess(port: 0x515, size: 4, isWrite: true, value: 0x2222_1111)))
    #expect(try next() == .halt)
    #expect(try next() == .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 0x2A)))
  }

  @Test(.requires(.kvm)) func registersRoundTrip() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.ioAndMMIO)
    var regs = try vcpu.registers()
    #expect(regs.rip == 0x10000)
    regs.r15 = 0x0123_4567_89AB_CDEF
    try vcpu.setRegisters(regs)
    #expect(try vcpu.registers().r15 == 0x0123_4567_89AB_CDEF)
    let sregs = try vcpu.specialRegisters()
    #expect(sregs.cr3 == SmallGuestBoot.pml4)
    #expect(sregs.cs.l && sregs.cs.selector == SmallGuestBoot.kernelCode)
    try vcpu.setMSRs([0xC000_0102: 0x1234_5000])  // KERNEL_GS_BASE
    let kvm = try #require(vcpu as? KVMVirtualCPU)
    #expect(try kvm.msrs([0xC000_0102])[0xC000_0102] == 0x1234_5000)
  }

  @Test(.requires(.kvm)) func tripleFaultIsAShutdownExit() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.tripleFault)
    #expect(try vcpu.run(budget: nil) == .shutdown(.tripleFault))
  }

  @Test(.requires(.kvm)) func kickBeforeRunReturnsKicked() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.ioAndMMIO)
    vcpu.kick()
    #expect(try vcpu.run(budget: nil) == .kicked)
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0x510, size: 1, isWrite: true, value: 0xAB)))
  }

  @Test(.requires(.kvm)) func unsupportedExitControlsAreReported() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.ioAndMMIO)
    #expect(vcpu.unsupportedExitControls.isEmpty)
    vcpu.exitControls.cpuidExiting = true
    #expect(vcpu.unsupportedExitControls == ["cpuid-exiting"])
  }

  @Test(.requires(.kvm)) func ioBitmapKeepsUnlistedPortsInTheEngine() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.ioAndMMIO)
    vcpu.exitControls.exitOnAllPorts = false
    vcpu.exitControls.ioExitPorts = [0x515, 0xF4]
    #expect(vcpu.unsupportedExitControls.isEmpty)
    // Ports 0x510-0x514 never reach the VMM; the guest's IN from 0x511 and 0x514 read all ones.
    #expect(
      try vcpu.run(budget: nil) == .mmio(MMIOAccess(address: 0xD000_0000, size: 4, isWrite: true, value: 0x1234_5678)))
    #expect(try vcpu.run(budget: nil) == .mmio(MMIOAccess(address: 0xD000_0008, size: 8, isWrite: false)))
    try vcpu.complete(.value(7))
    #expect(try vcpu.run(budget: nil) == .mmio(MMIOAccess(address: 0xD000_0010, size: 8, isWrite: true, value: 7)))
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0x515, size: 4, isWrite: true, value: 0xFFFF_FFFF)))
  }

  @Test(.requires(.kvm)) func internalErrorReportShowsBytesAtRIP() throws {
    let engine = try KVMTestSupport.engine()
    let (_, vcpu) = try KVMTestSupport.machine(engine, image: TestGuestImages.ioAndMMIO)
    let kvm = try #require(vcpu as? KVMVirtualCPU)
    let report = kvm.report("test")
    #expect(report.bytesAtRIP.prefix(4) == [0x66, 0xBA, 0x10, 0x05])
    #expect(report.description.contains("rip=0000000000010000"))
  }
}
