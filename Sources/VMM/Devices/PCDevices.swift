/// The standard set of legacy PC devices, created together and registered on a port bus at their
/// usual addresses. A convenience for the run loop; each device can also be used on its own.
///
/// | ports           | device                                   | IRQ |
/// |-----------------|------------------------------------------|-----|
/// | 0x20-0x21, 0xA0-0xA1, 0x4D0-0x4D1 | `PICPair` (when it is the sink) | |
/// | 0x40-0x43       | `PIT8254`                                | 0   |
/// | 0x60, 0x64      | `I8042`                                  | 1, 12 |
/// | 0x61            | `SystemControlPort`                      |     |
/// | 0x70-0x71       | `CMOS`                                   |     |
/// | 0x80            | `DiagnosticPort`                         |     |
/// | 0x92            | `FastA20Port`                            |     |
/// | 0xE9, 0x402     | `DebugConsole`                           |     |
/// | 0xF0-0xF1       | `CoprocessorErrorLatch` (x87 errors with CR0.NE clear) | 13 |
/// | 0xF4            | `DebugExitDevice`                        |     |
/// | 0x3F8-0x3FF     | `Serial16550` (COM1)                     | 4   |
/// | 0x510-0x511     | `FwCfg` (unless `firmwareConfiguration: false`) |     |
/// | 0x604-0x605     | `PowerOffDevice`                         |     |
/// | 0xCF8-0xCFF     | `PCIHostBridge`                          |     |
/// | 0x1F0-0x1F7, 0x3F6; 0x170-0x177, 0x376 | `IDEController` (with disks; PCI 00:01.0) | 14; 15 |
/// | memory BARs in `PCIMemoryWindow` | `VirtioPCIFunction` with `VirtioBlock` per virtio disk (PCI 00:02.0 on), then `VirtioConsole`, then `VirtioNet` | MSI-X, or INTx on 10/11 |
public final class PCDevices {
  /// The i8259 pair (0x20, 0xA0, ELCR 0x4D0).
  public let pic: PICPair
  /// The i8254 timer (0x40-0x43, IRQ 0).
  public let pit: PIT8254
  /// Port 0x61: PIT channel 2 gate and output, speaker.
  public let systemControl: SystemControlPort
  /// COM1 (0x3F8, IRQ 4).
  public let serial: Serial16550
  /// The CMOS RTC and NVRAM (0x70-0x71).
  public let cmos: CMOS
  /// The i8042 (0x60, 0x64): A20 and the reset line.
  public let keyboardController: I8042
  /// Port 0x92: fast A20 and reset.
  public let fastA20: FastA20Port
  /// The POST code port (0x80).
  public let diagnostic: DiagnosticPort
  /// The debug console (0xE9, 0x402).
  public let debugConsole: DebugConsole
  /// isa-debug-exit (0xF4).
  public let debugExit: DebugExitDevice
  /// The x87 error latch (0xF0-0xF1, IRQ 13) for guests with CR0.NE clear.
  public let coprocessorError: CoprocessorErrorLatch
  /// The power-off register (0x604).
  public let powerOff: PowerOffDevice
  /// The PCI host bridge (0xCF8/0xCFC, reset at 0xCF9).
  public let pci: PCIHostBridge
  /// The IDE controller with the machine's disks; nil without disks.
  public let ide: IDEController?
  /// The virtio-blk functions, one per virtio disk.
  public let virtioBlocks: [VirtioPCIFunction]
  /// The virtio console, when the machine has one (it then takes the host input instead of COM1).
  public let virtioConsole: VirtioPCIFunction?
  /// The device halves of the virtio functions above, for the machine's input and statistics.
  let virtioBlockDevices: [VirtioBlock]
  let virtioConsoleDevice: VirtioConsole?
  /// The virtio network card, when the machine has a network (`--net user`): after the virtio
  /// disks and the console on PCI.
  public let virtioNet: VirtioPCIFunction?
  let virtioNetDevice: VirtioNet?
  /// The PCI memory window the virtio functions' BARs decode in (the machine registers it on
  /// its MMIO bus when it is not empty).
  public let pciMemoryWindow = PCIMemoryWindow()
  /// The first PCI slot of the virtio disks, and where their BARs start before firmware moves them.
  static let firstVirtioSlot = 2
  static let firstVirtioBAR: UInt32 = 0xFE00_0000
  /// fw_cfg (0x510-0x511); nil when the machine leaves it out.
  public let fwCfg: FwCfg?
  /// Where device interrupts go: `pic`, or the sink given at creation (KVM's irqchip).
  public let interruptSink: any InterruptSink
  /// The PCI functions' INTx lines (the interrupt links the DSDT's `_PRT` describes).
  public let pciInterrupts: PCIInterruptRouter
  private let registerPIC: Bool

  /// - Parameters:
  ///   - memory: guest memory (for the CMOS and fw_cfg memory sizes).
  ///   - clock: guest time for the PIT and the RTC.
  ///   - interruptSink: where IRQs go; nil means the userspace `pic`, which is then registered
  ///     on the bus too. With KVM's in-kernel irqchip, pass a sink that forwards to it.
  ///   - serialOutput: COM1's transmitted bytes.
  ///   - consoleOutput: the debug console's bytes (defaults to `serialOutput`).
  ///   - firmwareConfiguration: add fw_cfg (QEMU's firmware configuration device).
  ///   - disks: raw disk images for the IDE controller (at most four); none: no controller.
  ///   - virtioDisks: raw disk images, each a virtio-blk PCI function.
  ///   - messages: where the virtio functions' MSI-X messages go; nil: no MSI-X (INTx only).
  ///   - virtioConsole: add a virtio console whose output goes to `serialOutput`.
  ///   - network: add a virtio network card whose frames go to and come from this backend.
  ///   - control: where stop, reset and A20 requests go.
  ///   - cpuCount: the vCPUs firmware is told about (fw_cfg).
  ///   - ioapic: with the userspace PIC, an I/O APIC that receives the ISA lines too
  ///     (`LegacyInterruptWiring`).
  public init(
    memory: GuestMemory, clock: any GuestClock, control: MachineControl, interruptSink: (any InterruptSink)? = nil,
    ioapic: IOAPIC? = nil, cpuCount: Int = 1,
    serialOutput: @escaping ([UInt8]) -> Void, consoleOutput: (([UInt8]) -> Void)? = nil,
    firmwareConfiguration: Bool = true, disks: [DiskImage] = [], virtioDisks: [DiskImage] = [],
    messages: MessageSignalledInterrupts? = nil, virtioConsole: Bool = false, network: (any EthernetBackend)? = nil
  ) {
    let pic = PICPair()
    self.pic = pic
    registerPIC = interruptSink == nil
    let sink = interruptSink ?? ioapic.map { LegacyInterruptWiring(pic: pic, ioapic: $0) } ?? pic
    self.interruptSink = sink
    let pciInterrupts = PCIInterruptRouter(pic: interruptSink ?? pic, ioapic: interruptSink ?? ioapic)
    self.pciInterrupts = pciInterrupts
    pit = PIT8254(clock: clock, irq: InterruptLine(sink: sink, line: 0))
    systemControl = SystemControlPort(pit: pit)
    serial = Serial16550(irq: InterruptLine(sink: sink, line: 4), output: serialOutput)
    cmos = CMOS(clock: clock, ramSize: memory.ramSize)
    keyboardController = I8042(
      keyboardIRQ: InterruptLine(sink: sink, line: 1), auxIRQ: InterruptLine(sink: sink, line: 12), control: control)
    fastA20 = FastA20Port(control: control)
    diagnostic = DiagnosticPort()
    debugConsole = DebugConsole(output: consoleOutput ?? serialOutput)
    debugExit = DebugExitDevice(control: control)
    coprocessorError = CoprocessorErrorLatch(irq: InterruptLine(sink: sink, line: 13))
    powerOff = PowerOffDevice(control: control)
    pci = PCIHostBridge(control: control)
    ide = disks.isEmpty ? nil : IDEController(disks: disks, sink: sink)
    if let ide { pci.attach(ide, slot: 1) }
    virtioBlockDevices = virtioDisks.enumerated().map { i, image in
      VirtioBlock(image: image, serial: "trivisor-vblk-\(i)")
    }
    // The virtio functions take consecutive slots from `firstVirtioSlot`: disks, console, network.
    let sendMSI = messages.map { m in { (address: UInt64, data: UInt32) in m.send(address: address, data: data) } }
    func virtioFunction(_ device: any VirtioDeviceBackend, index: Int) -> VirtioPCIFunction {
      let slot = PCDevices.firstVirtioSlot + index
      return VirtioPCIFunction(
        backend: device, memory: memory, bar: PCDevices.firstVirtioBAR + UInt32(index) * 0x1_0000,
        intx: pciInterrupts.line(slot: slot),
        interruptLine: UInt8(PCIInterruptRouter.picIRQ(link: PCIInterruptRouter.link(slot: slot, pin: 0))),
        sendMSI: sendMSI)
    }
    virtioBlocks = virtioBlockDevices.enumerated().map { i, device in virtioFunction(device, index: i) }
    let consoleIndex = virtioDisks.count
    virtioConsoleDevice = virtioConsole ? VirtioConsole(output: serialOutput) : nil
    self.virtioConsole = virtioConsoleDevice.map { virtioFunction($0, index: consoleIndex) }
    let netIndex = consoleIndex + (virtioConsole ? 1 : 0)
    virtioNetDevice = network.map { VirtioNet(backend: $0) }
    virtioNet = virtioNetDevice.map { virtioFunction($0, index: netIndex) }
    let virtioFunctions = virtioBlocks + [self.virtioConsole, virtioNet].compactMap { $0 }
    for (i, f) in virtioFunctions.enumerated() {
      pci.attach(f, slot: PCDevices.firstVirtioSlot + i)
      pciMemoryWindow.add(f)
    }
    fwCfg = firmwareConfiguration ? FwCfg.standard(memory: memory, cpuCount: cpuCount) : nil
  }

  /// Registers every device at its usual ports.
  public func register(on bus: PortIOBus) throws(PortIOBus.BusError) {
    if registerPIC {
      try bus.register(pic, ports: 0x20...0x21)
      try bus.register(pic, ports: 0xA0...0xA1)
      try bus.register(pic, ports: 0x4D0...0x4D1)
    }
    try bus.register(pit, ports: 0x40...0x43)
    try bus.register(keyboardController, ports: 0x60...0x60)
    try bus.register(systemControl, ports: 0x61...0x61)
    try bus.register(keyboardController, ports: 0x64...0x64)
    try bus.register(cmos, ports: 0x70...0x71)
    try bus.register(diagnostic, ports: 0x80...0x80)
    try bus.register(fastA20, ports: 0x92...0x92)
    try bus.register(debugConsole, ports: 0xE9...0xE9)
    try bus.register(debugConsole, ports: 0x402...0x402)
    try bus.register(coprocessorError, ports: 0xF0...0xF1)
    try bus.register(debugExit, ports: 0xF4...0xF4)
    try bus.register(serial, ports: 0x3F8...0x3FF)
    if let fwCfg { try bus.register(fwCfg, ports: 0x510...0x511) }
    try bus.register(powerOff, ports: 0x604...0x605)
    try bus.register(pci, ports: 0xCF8...0xCFF)
    try ide?.register(on: bus)
  }

  /// Every device back to its power-on state, for a machine reset. With the engine's in-kernel
  /// interrupt controller the userspace PIC and PIT are not in use and stay as they are.
  public func reset() {
    var all: [any ResettableDevice] = [
      systemControl, serial, keyboardController, fastA20, powerOff, pci, coprocessorError,
    ]
    if let fwCfg { all.append(fwCfg) }
    if let ide { all.append(ide) }
    all += virtioBlocks as [any ResettableDevice]
    if let virtioConsole { all.append(virtioConsole) }
    if let virtioNet { all.append(virtioNet) }
    if registerPIC { all += [pic, pit] }
    for d in all { d.reset() }
  }

  /// The devices that need `advance(to:)`.
  public var timedDevices: [any TimedDevice] { [pit] }
}
