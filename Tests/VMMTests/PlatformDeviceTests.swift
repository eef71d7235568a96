import Testing

@testable import VMM

@Suite struct PCIHostBridgeTests {
  let control = MachineControl()
  let pci: PCIHostBridge
  init() { pci = PCIHostBridge(control: control) }

  func config(bus: UInt32 = 0, device: UInt32 = 0, function: UInt32 = 0, offset: UInt32, size: Int = 4) -> UInt32 {
    pci.write(port: 0xCF8, size: 4, value: 0x8000_0000 | bus << 16 | device << 11 | function << 8 | (offset & 0xFC))
    return pci.read(port: 0xCFC + UInt16(offset & 3), size: size)
  }

  @Test func mechanism1DetectionAsLinuxDoesIt() {
    pci.write(port: 0xCFB, size: 1, value: 0x01)
    pci.write(port: 0xCF8, size: 4, value: 0x8000_0000)
    #expect(pci.read(port: 0xCF8, size: 4) == 0x8000_0000)
  }

  @Test func hostBridgeIdentity() {
    #expect(config(offset: 0) == 0x1237_8086)
    #expect(config(offset: 8) >> 8 == 0x06_0000)
    #expect(config(offset: 2, size: 2) == 0x1237)
    #expect(config(offset: 0x0B, size: 1) == 0x06)
    // QEMU's subsystem vendor/ID: how SeaBIOS recognizes an emulated i440FX.
    #expect(config(offset: 0x2C) == 0x1100_1AF4)
  }

  @Test func nothingElseIsThere() {
    #expect(config(device: 1, offset: 0) == 0xFFFF_FFFF)
    #expect(config(function: 1, offset: 0) == 0xFFFF_FFFF)
    #expect(config(bus: 1, offset: 0) == 0xFFFF_FFFF)
    pci.write(port: 0xCF8, size: 4, value: 0)  // enable bit clear
    #expect(pci.read(port: 0xCFC, size: 4) == 0xFFFF_FFFF)
  }

  @Test func onlyWritableRegistersChange() {
    _ = config(offset: 0x58)
    pci.write(port: 0xCFD, size: 1, value: 0x30)  // PAM0
    #expect(config(offset: 0x59, size: 1) == 0x30)
    _ = config(offset: 0)
    pci.write(port: 0xCFC, size: 4, value: 0)
    #expect(config(offset: 0) == 0x1237_8086)
  }

  @Test func resetControlRegister() {
    pci.write(port: 0xCF9, size: 1, value: 0x02)
    #expect(control.resetHistory.isEmpty)
    pci.write(port: 0xCF9, size: 1, value: 0x06)
    #expect(control.resetHistory == [.resetControlRegister])
    #expect(control.take().reset == .resetControlRegister)
  }
}

@Suite struct I8042Tests {
  let sink = RecordingSink()
  let kbc: I8042
  let control = MachineControl()

  init() {
    kbc = I8042(
      keyboardIRQ: InterruptLine(sink: sink, line: 1), auxIRQ: InterruptLine(sink: sink, line: 12), control: control)
  }

  func command(_ c: UInt8) { kbc.write(port: 0x64, size: 1, value: UInt32(c)) }
  func data(_ d: UInt8) { kbc.write(port: 0x60, size: 1, value: UInt32(d)) }
  func status() -> UInt8 { UInt8(kbc.read(port: 0x64, size: 1)) }
  func readData() -> UInt8 { UInt8(kbc.read(port: 0x60, size: 1)) }

  @Test func selfTestAnswers55() {
    #expect(status() & 0x01 == 0)
    command(0xAA)
    #expect(status() & 0x05 == 0x05)  // output full, system flag
    #expect(readData() == 0x55)
    #expect(status() & 0x01 == 0)
  }

  @Test func commandByteRoundTrip() {
    command(0x60)
    data(0x47)
    command(0x20)
    #expect(readData() == 0x47)
  }

  @Test func a20ThroughTheOutputPort() {
    #expect(kbc.a20Enabled && control.a20Enabled)
    command(0xD1)
    data(0xDD)  // bit 1 clear: A20 off, bit 0 set: no reset
    #expect(!kbc.a20Enabled && control.resetHistory.isEmpty)
    #expect(!control.a20Enabled && control.hasChanged(since: 0))
    command(0xD0)
    #expect(readData() == 0xDD)
    command(0xDF)
    #expect(kbc.a20Enabled && control.a20Enabled)
  }

  @Test func resetPulse() {
    command(0xFF)  // pulse nothing (bit 0 set)
    #expect(control.resetHistory.isEmpty)
    command(0xFE)
    #expect(control.resetHistory == [.keyboardController])
  }

  @Test func keyboardCommandsAndIRQ1() {
    data(0xFF)
    #expect(sink.levels[1])
    #expect(readData() == 0xFA)
    #expect(readData() == 0xAA)
    #expect(!sink.levels[1])
    data(0xF2)
    let edges = sink.risingEdges[1]
    #expect([readData(), readData(), readData()] == [0xFA, 0xAB, 0x83])
    // The identify reply's later bytes each raise IRQ 1 again (an edge-triggered I/O APIC pin
    // would lose them otherwise).
    #expect(sink.risingEdges[1] == edges + 2)
    #expect(!sink.levels[1])
    data(0xF0)
    data(0x00)
    #expect([readData(), readData(), readData()] == [0xFA, 0xFA, 0x02])
    data(0xEE)
    #expect(readData() == 0xEE)
  }

  @Test func irqDisabledByCommandByte() {
    command(0x60)
    data(0x44)
    data(0xF4)
    #expect(!sink.levels[1])
    #expect(status() & 1 == 1)
  }

  @Test func disabledKeyboardInterfaceRaisesNoIRQ() {
    // SeaBIOS disables the keyboard (0xAD) and self-tests the controller by polling; a latched
    // IRQ 1 would later reach its handler with an empty buffer.
    command(0xAD)
    command(0xAA)
    #expect(!sink.levels[1])
    #expect(readData() == 0x55)
    command(0xAE)
    command(0xD2)
    data(0x1C)
    #expect(sink.levels[1])
  }

  @Test func auxOutputBufferUsesIRQ12() {
    command(0x60)
    data(0x47)
    command(0xD3)
    data(0x5A)
    #expect(status() & 0x21 == 0x21)
    #expect(sink.levels[12])
    #expect(readData() == 0x5A)
    #expect(!sink.levels[12])
    command(0xD4)
    data(0xFF)  // no mouse
    #expect(status() & 0x61 == 0x61)  // timeout, aux data waiting
    #expect(readData() == 0xFE)
  }

  @Test func scanCodesFromTheHost() {
    kbc.typeScanCodes([0x1E, 0x9E])
    #expect(readData() == 0x1E)
    #expect(readData() == 0x9E)
    #expect(readData() == 0)
  }
}

@Suite struct FastA20AndFwCfgTests {
  @Test func port92() {
    let control = MachineControl()
    let p = FastA20Port(control: control)
    #expect(!p.a20Enabled)
    p.write(port: 0x92, size: 1, value: 0x02)
    #expect(p.a20Enabled && control.resetHistory.isEmpty)
    #expect(p.read(port: 0x92, size: 1) == 0x02)
    // The keyboard controller holds A20 open at power-on; with it closed, port 0x92 decides.
    control.setA20(.keyboardController, enabled: false)
    #expect(control.a20Enabled)
    p.write(port: 0x92, size: 1, value: 0x00)
    #expect(!control.a20Enabled)
    p.write(port: 0x92, size: 1, value: 0x03)
    #expect(control.resetHistory == [.fastResetPort])
    #expect(control.a20Enabled)
  }

  func readItem(_ f: FwCfg, _ key: UInt16, count: Int) -> [UInt8] {
    f.write(port: 0x510, size: 2, value: UInt32(key))
    return (0..<count).map { _ in UInt8(f.read(port: 0x511, size: 1)) }
  }

  @Test func signatureAndID() {
    let f = FwCfg()
    #expect(readItem(f, 0, count: 4) == Array("QEMU".utf8))
    #expect(readItem(f, 1, count: 4) == [1, 0, 0, 0])
    #expect(readItem(f, 0x4242, count: 2) == [0, 0])
  }

  @Test func fileDirectoryAndE820() throws {
    let m = try GuestMemory(ramSize: 4 << 30)
    let f = FwCfg.standard(memory: m, cpuCount: 2)
    #expect(readItem(f, FwCfg.ramSizeKey, count: 8) == TestImages.le(UInt64(4 << 30)))
    #expect(readItem(f, FwCfg.cpuCountKey, count: 2) == [2, 0])
    let dir = readItem(f, FwCfg.fileDirectoryKey, count: 4 + 2 * 64)
    #expect(dir[0...3] == [0, 0, 0, 2])
    let size = Int(dir[4]) << 24 | Int(dir[5]) << 16 | Int(dir[6]) << 8 | Int(dir[7])
    let key = UInt16(dir[8]) << 8 | UInt16(dir[9])
    #expect(key == 0x20)
    #expect(String(decoding: dir[12..<20], as: UTF8.self) == "etc/e820")
    #expect(size == 40)
    let e820 = readItem(f, key, count: size)
    #expect(Array(e820[0..<20]) == TestImages.le(UInt64(0)) + TestImages.le(UInt64(3 << 30)) + [1, 0, 0, 0])
    #expect(Array(e820[20..<28]) == TestImages.le(UInt64(4 << 30)))
    // SeaBIOS's serial console on COM1 (it has no VGA to show its screen on).
    let sercon = dir[68..<132]
    #expect(String(decoding: sercon[76..<91], as: UTF8.self) == "etc/sercon-port")
    #expect(sercon[68...71] == [0, 0, 0, 2])
    #expect(readItem(f, UInt16(sercon[72]) << 8 | UInt16(sercon[73]), count: 2) == [0xF8, 0x03])
    // A 32-bit read of the data port returns four consecutive bytes.
    f.write(port: 0x510, size: 2, value: 0)
    #expect(f.read(port: 0x511, size: 4) == 0x554D_4551)
  }

  @Test func fileNamesAreChecked() {
    let f = FwCfg()
    #expect(f.addFile("a", data: [1]) == 0x20)
    #expect(f.addFile("a", data: [1]) == nil)
    #expect(f.addFile(String(repeating: "x", count: 56), data: []) == nil)
    #expect(f.addFile("b", data: []) == 0x21)
  }
}
