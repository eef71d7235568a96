import KVMEngine
import TestHostSupport
import Testing
import VMM

/// Opening /dev/kvm: the errors a user sees when it cannot be used, and the capabilities when it can.
@Suite struct KVMSystemTests {
  @Test func missingDeviceIsAOneLineError() {
    #expect(throws: KVMUnavailable.missing(path: "/nonexistent/kvm")) {
      try KVMSystem(path: "/nonexistent/kvm")
    }
    let message = KVMUnavailable.missing(path: "/dev/kvm").description
    #expect(!message.contains("\n") && message.contains("/dev/kvm"))
    #expect(KVMUnavailable.permissionDenied(path: "/dev/kvm").description.contains("permission denied"))
    #expect(KVMUnavailable.unsupportedAPIVersion(11).description.contains("version 11"))
  }

  @Test func aDeviceThatIsNotKVMIsRefused() {
    #expect(throws: KVMUnavailable.self) { try KVMSystem(path: "/dev/null") }
  }

  @Test(.requires(.kvm)) func capabilitiesOfAUsableDevice() throws {
    let engine = try KVMTestSupport.engine()
    let kvm = engine.system
    #expect(kvm.apiVersion == 12)
    #expect(kvm.capabilities.userMemory && kvm.capabilities.immediateExit)
    #expect(kvm.vcpuMapSize >= 4096)
    #expect(try kvm.supportedCPUID().contains { $0.function == 0 })
    #expect(["GenuineIntel", "AuthenticAMD"].contains(kvm.cpuVendor() ?? ""))
  }

  @Test(.requires(.kvm, .kvmReadonlyMemory)) func readOnlyROMWritesBecomeMMIOExits() throws {
    let engine = try KVMTestSupport.engine()
    // Guest: write 0x55 to the ROM at 0x200000, read it back, OUT it to port 0x510.
    let code: [UInt8] = [
      0xB8, 0x00, 0x00, 0x20, 0x00,  // mov eax, 0x200000
      0xC6, 0x00, 0x55,  // mov byte [rax], 0x55
      0x8A, 0x00,  // mov al, [rax]
      0x66, 0xBA, 0x10, 0x05,  // mov dx, 0x510
      0xEE,  // out dx, al
    ]
    let mem = try GuestMemory(ramSize: 2 << 20)
    try mem.addROM(at: 0x200000, bytes: [0xAA])
    try mem.write(0x10000, bytes: code)
    let boot = try SmallGuestBoot.prepare(memory: mem, entry: 0x10000)
    let vcpu = try engine.createVM(memory: mem, options: EngineOptions()).createVCPU(index: 0)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    #expect(try vcpu.run(budget: nil) == .mmio(MMIOAccess(address: 0x200000, size: 1, isWrite: true, value: 0x55)))
    #expect(try vcpu.run(budget: nil) == .io(PortAccess(port: 0x510, size: 1, isWrite: true, value: 0xAA)))
  }
}
