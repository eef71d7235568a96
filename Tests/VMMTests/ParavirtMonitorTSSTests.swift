import Testing

@testable import VMM

/// The monitor's TSSs: RSP0 on the vCPU's monitor stack, and an I/O bitmap that opens to ring 3
/// exactly the hypercall port of an engine whose trap is an OUT (kvm), nothing for VMCALL.
@Suite struct ParavirtMonitorTSSTests {
  /// The I/O bitmap of vCPU `index`'s TSS as written for `trap`: bit set = the port faults.
  static func bitmap(trap: [UInt8], cpus: Int, index: Int) throws -> (tss: [UInt8], denied: (Int) -> Bool) {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let layout = try #require(ParavirtMonitor.Layout(memory: memory, cpus: cpus))
    try ParavirtMonitor(layout: layout).writePages(into: memory, trap: trap)
    let page = try memory.read(layout.tssFrame, count: 4096)
    let tss = Array(page[index * ParavirtMonitor.Layout.tssStride..<(index + 1) * ParavirtMonitor.Layout.tssStride])
    let base = Int(tss[102]) | Int(tss[103]) << 8
    return (tss, { port in tss[base + port / 8] & (1 << (port % 8)) != 0 })
  }

  @Test func kvmsTrapPortIsTheOnlyPortOpenToRing3() throws {
    for index in [0, 3] {
      let (tss, denied) = try Self.bitmap(trap: [0xE7, 0xE4], cpus: 4, index: index)
      for port in 0..<256 {
        #expect(denied(port) == !(0xE4...0xE7).contains(port), "port \(port) of vCPU \(index)")
      }
      #expect(tss[ParavirtMonitor.Layout.tssLimit] == 0xFF, "the byte past the bitmap")
      let rsp0 = (0..<8).reduce(UInt64(0)) { $0 | UInt64(tss[4 + $1]) << (8 * $1) }
      #expect(rsp0 == ParavirtMonitor.Layout.stackTop(index))
    }
  }

  @Test func vmcallEnginesOpenNoPort() throws {
    let (_, denied) = try Self.bitmap(trap: [0x0F, 0x01, 0xC1], cpus: 1, index: 0)
    #expect((0..<256).allSatisfy(denied))
  }

  @Test func theTaskRegisterCoversTheBitmap() {
    let s = ParavirtMonitor.specialRegisters(vcpu: 2, cr3: 0x1000)
    #expect(s.tr.limit == UInt32(ParavirtMonitor.Layout.tssLimit))
    #expect(s.tr.base == ParavirtMonitor.Layout.tssAddress(2))
    #expect(ParavirtMonitor.Layout.tssAddress(2) - ParavirtMonitor.Layout.tssAddress(1) == 256)
  }
}
