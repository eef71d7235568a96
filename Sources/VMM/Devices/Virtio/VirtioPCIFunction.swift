/// The virtio 1.x PCI transport ("Virtio Over PCI Bus", modern devices only): a PCI function
/// 1AF4:(1040 + device ID), revision 1, whose structures live in one 32 KiB memory BAR (BAR 0)
/// that vendor-specific capabilities point to, with MSI-X for interrupts and INTx as the fallback.
///
/// | BAR 0 offset | structure | capability |
/// |--------------|-----------|------------|
/// | 0x0000 | common configuration (0x38 bytes) | VIRTIO_PCI_CAP_COMMON_CFG |
/// | 0x1000 | ISR status (1 byte, read clears) | VIRTIO_PCI_CAP_ISR_CFG |
/// | 0x2000 | device configuration | VIRTIO_PCI_CAP_DEVICE_CFG |
/// | 0x3000 | queue notify registers, 4 bytes apart (queue_notify_off = queue index) | VIRTIO_PCI_CAP_NOTIFY_CFG |
/// | 0x4000 | MSI-X table (one vector per queue, plus one) | MSI-X, BIR 0 |
/// | 0x5000 | MSI-X pending bits | |
///
/// plus the VIRTIO_PCI_CAP_PCI_CFG window, through which BAR 0 can be reached from configuration
/// space alone. Features offered: VIRTIO_F_VERSION_1, VIRTIO_F_RING_INDIRECT_DESC and the device's
/// own. A driver that breaks a queue's rules (`Virtqueue.Broken`) gets DEVICE_NEEDS_RESET in the
/// status and a configuration-change interrupt; the device then ignores its notifications until a
/// reset. The device does its work synchronously when the driver notifies a queue (the vCPU thread
/// that wrote the notify register, under the machine's device lock).
public final class VirtioPCIFunction: PCIMemoryBARFunction, ResettableDevice {
  /// Feature bits of the transport.
  enum Feature {
    static let indirectDescriptors: UInt64 = 1 << 28
    static let version1: UInt64 = 1 << 32
  }

  /// Device status bits.
  enum Status {
    static let acknowledge: UInt8 = 1
    static let driver: UInt8 = 2
    static let driverOK: UInt8 = 4
    static let featuresOK: UInt8 = 8
    static let needsReset: UInt8 = 0x40
    static let failed: UInt8 = 0x80
  }

  /// BAR 0's size and the offsets of its structures.
  static let barSize: UInt32 = 0x8000
  static let commonOffset: UInt64 = 0x0000
  static let isrOffset: UInt64 = 0x1000
  static let deviceOffset: UInt64 = 0x2000
  static let notifyOffset: UInt64 = 0x3000
  static let notifyMultiplier: UInt64 = 4
  static let msixTableOffset: UInt64 = 0x4000
  static let msixPBAOffset: UInt64 = 0x5000

  let backend: any VirtioDeviceBackend
  private let memory: GuestMemory
  private let queues: [Virtqueue]
  private var configuration: PCIConfigurationSpace
  private let initialBAR: UInt32
  private let intx: InterruptLine?
  /// The interrupt line register's reset value.
  private let interruptLine: UInt8
  /// Delivers an MSI-X message (address, data) to the local APICs; nil when the machine has none
  /// of its own (the engine's interrupt controller): the function then offers no MSI-X capability
  /// and guests use INTx.
  private let sendMSI: ((UInt64, UInt32) -> Void)?

  private var deviceFeatureSelect: UInt32 = 0
  private var driverFeatureSelect: UInt32 = 0
  private var driverFeatures: UInt64 = 0
  private var status: UInt8 = 0
  private var configGeneration: UInt8 = 0
  private var configVector: UInt16 = 0xFFFF
  private var queueSelect: UInt16 = 0
  private var isr: UInt8 = 0
  private var intxHigh = false
  /// MSI-X table entries (address, data, vector control) and pending bits.
  private var msixTable: [(address: UInt64, data: UInt32, masked: Bool)]
  private var msixPending: [Bool]
  /// Where the MSI-X capability and the PCI_CFG window capability sit in configuration space.
  private var msixCapability = 0
  private var pciCfgCapability = 0

  /// Why the device stopped using a queue (for logs and tests); nil while all is well.
  private(set) var brokenReason: String?
  /// Interrupts delivered: by MSI-X message, and by INTx.
  private(set) var msiSent: UInt64 = 0
  private(set) var intxRaised: UInt64 = 0

  /// A function for `backend` over `memory`, its BAR preset to `bar` (firmware may move it),
  /// raising `intx` (its INTA line) when MSI-X is off, with `interruptLine` (the PIC IRQ the
  /// line reaches) in the interrupt line register, and sending MSI-X messages through `sendMSI`
  /// (nil: no MSI-X capability).
  init(
    backend: any VirtioDeviceBackend, memory: GuestMemory, bar: UInt32, intx: InterruptLine?,
    interruptLine: UInt8 = 0, sendMSI: ((UInt64, UInt32) -> Void)?
  ) {
    self.backend = backend
    self.memory = memory
    self.sendMSI = sendMSI
    queues = (0..<backend.queueCount).map { _ in Virtqueue() }
    initialBAR = bar
    self.intx = intx
    self.interruptLine = interruptLine
    let vectors = backend.queueCount + 1
    msixTable = [(address: UInt64, data: UInt32, masked: Bool)](repeating: (0, 0, true), count: vectors)
    msixPending = [Bool](repeating: false, count: vectors)
    configuration = PCIConfigurationSpace(vendor: 0x1AF4, device: 0x1040 + backend.deviceID, classCode: 0)
    configuration = makeConfiguration()
    backend.requestService = { [weak self] queue in self?.notify(queue: queue) }
  }

  private func makeConfiguration() -> PCIConfigurationSpace {
    var c = PCIConfigurationSpace(
      vendor: 0x1AF4, device: 0x1040 + backend.deviceID, classCode: backend.pciClassCode, revision: 1,
      subsystemVendor: 0x1AF4, subsystem: 0x1100, interruptPin: 1)
    c.set8(0x3C, interruptLine)
    c.addMemoryBAR(0, size: VirtioPCIFunction.barSize, base: initialBAR)
    if sendMSI != nil {
      let vectors = UInt16(backend.queueCount)  // table size - 1
      var body = TableBytes()
      body.u16(vectors)
      body.u32(UInt32(VirtioPCIFunction.msixTableOffset))  // BIR 0
      body.u32(UInt32(VirtioPCIFunction.msixPBAOffset))
      msixCapability = c.addCapability(id: 0x11, body: body.bytes, writableMask: [0x00, 0xC0])
    }
    func virtioCap(_ type: UInt8, _ offset: UInt64, _ length: UInt32, extra: [UInt8] = [], mask: [UInt8] = []) -> Int {
      // cap_len, cfg_type, bar 0, id 0, padding, offset, length (after the ID and next pointer).
      var body = TableBytes()
      body.raw([UInt8(16 + extra.count), type, 0, 0, 0, 0])
      body.u32(UInt32(offset))
      body.u32(length)
      body.raw(extra)
      return c.addCapability(id: 0x09, body: body.bytes, writableMask: mask)
    }
    _ = virtioCap(1, VirtioPCIFunction.commonOffset, 0x38)
    _ = virtioCap(
      2, VirtioPCIFunction.notifyOffset, UInt32(UInt64(backend.queueCount) * VirtioPCIFunction.notifyMultiplier),
      extra: withUnsafeBytes(of: UInt32(VirtioPCIFunction.notifyMultiplier).littleEndian, Array.init))
    _ = virtioCap(3, VirtioPCIFunction.isrOffset, 1)
    _ = virtioCap(4, VirtioPCIFunction.deviceOffset, UInt32(max(backend.configurationLength, 1)))
    // PCI_CFG: bar (body byte 2), offset and length (6-13) and the data window (14-17) are the
    // driver's to set.
    pciCfgCapability = virtioCap(
      5, 0, 0, extra: [0, 0, 0, 0],
      mask: [0, 0, 0xFF, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8) + [0xFF, 0xFF, 0xFF, 0xFF])
    return c
  }

  private var features: UInt64 { Feature.version1 | Feature.indirectDescriptors | backend.deviceFeatures }
  private var msixEnabled: Bool { msixCapability != 0 && configuration.byte(msixCapability + 3) & 0x80 != 0 }
  private var msixFunctionMasked: Bool { configuration.byte(msixCapability + 3) & 0x40 != 0 }

  // MARK: Reset

  /// Power-on (`ResettableDevice`): the driver's state and the configuration space.
  public func reset() {
    resetDevice()
    resetConfiguration()
  }

  /// `PCIFunction`: configuration space as at power-on (BAR back to its preset address).
  public func resetConfiguration() {
    configuration = makeConfiguration()
    for i in msixTable.indices {
      msixTable[i] = (0, 0, true)
      msixPending[i] = false
    }
  }

  /// A device reset (status 0 written): queues, features and the backend forgotten.
  private func resetDevice() {
    for q in queues { q.reset() }
    backend.reset()
    deviceFeatureSelect = 0
    driverFeatureSelect = 0
    driverFeatures = 0
    status = 0
    configVector = 0xFFFF
    queueSelect = 0
    isr = 0
    brokenReason = nil
    updateINTx()
  }

  // MARK: Configuration space

  /// `PCIFunction`: a read of configuration space (the PCI_CFG window reads BAR 0).
  public func readConfiguration(offset: Int, size: Int) -> UInt32 {
    let data = pciCfgCapability + 16
    if offset >= data && offset < data + 4 {
      let (barOffset, length) = pciCfgWindow
      let value = UInt32(truncatingIfNeeded: readMemoryBAR(offset: barOffset, size: length))
      return value >> (8 * UInt32(offset - data))
    }
    return configuration.read(offset: offset, size: size)
  }

  /// `PCIFunction`: a write to configuration space.
  public func writeConfiguration(offset: Int, size: Int, value: UInt32) {
    let data = pciCfgCapability + 16
    if offset >= data && offset < data + 4 {
      let (barOffset, length) = pciCfgWindow
      writeMemoryBAR(offset: barOffset, size: length, value: UInt64(value))
      return
    }
    let wasMasked = !msixEnabled || msixFunctionMasked
    configuration.write(offset: offset, size: size, value: value)
    if wasMasked && msixEnabled && !msixFunctionMasked { deliverPendingMSIX() }
    updateINTx()
  }

  /// The BAR offset and access size the PCI_CFG capability selects (sizes 1, 2 or 4).
  private var pciCfgWindow: (UInt64, Int) {
    let offset = UInt64(configuration.read(offset: pciCfgCapability + 8, size: 4))
    let length = Int(configuration.read(offset: pciCfgCapability + 12, size: 4))
    return (offset, [1, 2, 4].contains(length) ? length : 4)
  }

  /// `PCIMemoryBARFunction`: BAR 0's decode.
  public var decodedMemoryBAR: (base: UInt64, size: UInt64)? {
    configuration.memoryBAR(0).map { ($0, UInt64(VirtioPCIFunction.barSize)) }
  }

  // MARK: BAR 0

  /// `PCIMemoryBARFunction`: a read inside BAR 0.
  public func readMemoryBAR(offset: UInt64, size: Int) -> UInt64 {
    switch offset {
    case 0..<0x38: return commonImage().read(at: Int(offset), size: size)
    case VirtioPCIFunction.isrOffset:
      let value = isr
      isr = 0
      updateINTx()
      return UInt64(value)
    case VirtioPCIFunction.deviceOffset..<(VirtioPCIFunction.deviceOffset + UInt64(backend.configurationLength)):
      let inner = Int(offset - VirtioPCIFunction.deviceOffset)
      guard inner + size <= backend.configurationLength else { return 0 }
      return backend.readConfiguration(offset: inner, size: size)
    case VirtioPCIFunction.msixTableOffset..<(VirtioPCIFunction.msixTableOffset + UInt64(16 * msixTable.count)):
      return readMSIXTable(Int(offset - VirtioPCIFunction.msixTableOffset), size)
    case VirtioPCIFunction.msixPBAOffset..<(VirtioPCIFunction.msixPBAOffset + 8):
      var bits: UInt64 = 0
      for (i, p) in msixPending.enumerated() where p { bits |= 1 << UInt64(i) }
      return bits >> (8 * (offset - VirtioPCIFunction.msixPBAOffset))
    default: return 0
    }
  }

  /// `PCIMemoryBARFunction`: a write inside BAR 0.
  public func writeMemoryBAR(offset: UInt64, size: Int, value: UInt64) {
    switch offset {
    case 0..<0x38: writeCommon(Int(offset), size, value)
    case VirtioPCIFunction.deviceOffset..<(VirtioPCIFunction.deviceOffset + UInt64(backend.configurationLength)):
      let inner = Int(offset - VirtioPCIFunction.deviceOffset)
      guard inner + size <= backend.configurationLength else { return }
      backend.writeConfiguration(offset: inner, size: size, value: value)
    case VirtioPCIFunction
      .notifyOffset..<(VirtioPCIFunction.notifyOffset + UInt64(queues.count) * VirtioPCIFunction.notifyMultiplier):
      notify(queue: Int((offset - VirtioPCIFunction.notifyOffset) / VirtioPCIFunction.notifyMultiplier))
    case VirtioPCIFunction.msixTableOffset..<(VirtioPCIFunction.msixTableOffset + UInt64(16 * msixTable.count)):
      writeMSIXTable(Int(offset - VirtioPCIFunction.msixTableOffset), size, value)
    default: break
    }
  }

  private var selectedQueue: Virtqueue? { Int(queueSelect) < queues.count ? queues[Int(queueSelect)] : nil }

  /// The common configuration structure as the driver sees it (0x38 bytes).
  private func commonImage() -> TableBytes {
    var b = TableBytes()
    b.u32(deviceFeatureSelect)
    b.u32(deviceFeatureSelect < 2 ? UInt32(truncatingIfNeeded: features >> (32 * UInt64(deviceFeatureSelect))) : 0)
    b.u32(driverFeatureSelect)
    b.u32(
      driverFeatureSelect < 2 ? UInt32(truncatingIfNeeded: driverFeatures >> (32 * UInt64(driverFeatureSelect))) : 0)
    b.u16(configVector)
    b.u16(UInt16(queues.count))
    b.u8(status)
    b.u8(configGeneration)
    b.u16(queueSelect)
    if let q = selectedQueue {
      b.u16(q.size)
      b.u16(q.msixVector)
      b.u16(q.enabled ? 1 : 0)
      b.u16(queueSelect)  // queue_notify_off
      b.u64(q.descriptorTable)
      b.u64(q.availableRing)
      b.u64(q.usedRing)
    } else {
      b.zeros(0x38 - b.count)
    }
    return b
  }

  private func writeCommon(_ offset: Int, _ size: Int, _ value: UInt64) {
    // Apply the bytes to the image, then take each register the write touched from it.
    var b = commonImage()
    b.write(value, at: offset, size: size)
    func get(_ o: Int, _ n: Int) -> UInt64 { b.read(at: o, size: n) }
    func touched(_ o: Int, _ n: Int) -> Bool { offset < o + n && o < offset + size }
    if touched(0x00, 4) { deviceFeatureSelect = UInt32(get(0x00, 4)) }
    if touched(0x08, 4) { driverFeatureSelect = UInt32(get(0x08, 4)) }
    if touched(0x0C, 4), status & Status.featuresOK == 0, driverFeatureSelect < 2 {
      let shift = 32 * UInt64(driverFeatureSelect)
      driverFeatures = (driverFeatures & ~(0xFFFF_FFFF << shift)) | (get(0x0C, 4) << shift)
    }
    if touched(0x10, 2) { configVector = UInt16(get(0x10, 2)) }
    if touched(0x14, 1) { writeStatus(UInt8(get(0x14, 1))) }
    if touched(0x16, 2) { queueSelect = UInt16(get(0x16, 2)) }
    guard let q = selectedQueue else { return }
    if touched(0x1A, 2) { q.msixVector = UInt16(get(0x1A, 2)) }
    // The rest of a queue's registers may change only while it is disabled.
    guard !q.enabled else { return }
    if touched(0x18, 2) { q.size = UInt16(get(0x18, 2)) }
    if touched(0x20, 8) { q.descriptorTable = get(0x20, 8) }
    if touched(0x28, 8) { q.availableRing = get(0x28, 8) }
    if touched(0x30, 8) { q.usedRing = get(0x30, 8) }
    if touched(0x1C, 2), get(0x1C, 2) & 1 != 0 {
      do throws(Virtqueue.Broken) {
        try q.validate(in: memory)
        q.indirectDescriptors = driverFeatures & Feature.indirectDescriptors != 0
        q.enabled = true
      } catch {
        markBroken(error)
      }
    }
  }

  private func writeStatus(_ value: UInt8) {
    if value == 0 {
      resetDevice()
      return
    }
    var v = value
    if v & Status.featuresOK != 0 && status & Status.featuresOK == 0 {
      // The driver may only accept what was offered, and a modern driver must accept VERSION_1.
      let acceptable = driverFeatures & ~features == 0 && driverFeatures & Feature.version1 != 0
      if !acceptable { v &= ~Status.featuresOK }
    }
    let becameReady = v & Status.driverOK != 0 && status & Status.driverOK == 0
    status = (status & Status.needsReset) | v
    if becameReady { backend.activate(features: driverFeatures) }
  }

  private func notify(queue index: Int) {
    guard status & Status.driverOK != 0, status & Status.needsReset == 0, index < queues.count else { return }
    let q = queues[index]
    guard q.enabled else { return }
    do throws(Virtqueue.Broken) {
      if try backend.process(queue: q, index: index, memory: memory) && !q.interruptsSuppressed(memory) {
        interrupt(vector: q.msixVector, isrBit: 1)
      }
    } catch {
      markBroken(error)
    }
  }

  private func markBroken(_ error: Virtqueue.Broken) {
    brokenReason = error.description
    status |= Status.needsReset
    configGeneration &+= 1
    interrupt(vector: configVector, isrBit: 2)
  }

  // MARK: Interrupts

  private func interrupt(vector: UInt16, isrBit: UInt8) {
    if msixEnabled {
      guard Int(vector) < msixTable.count else { return }
      if msixFunctionMasked || msixTable[Int(vector)].masked {
        msixPending[Int(vector)] = true
      } else {
        sendMSIX(Int(vector))
      }
      return
    }
    isr |= isrBit
    updateINTx()
  }

  private func sendMSIX(_ vector: Int) {
    msixPending[vector] = false
    msiSent &+= 1
    sendMSI?(msixTable[vector].address, msixTable[vector].data)
  }

  private func deliverPendingMSIX() {
    guard msixEnabled, !msixFunctionMasked else { return }
    for i in msixTable.indices where msixPending[i] && !msixTable[i].masked { sendMSIX(i) }
  }

  /// The INTx line: high while the ISR has a bit set, MSI-X is off and INTx is not disabled
  /// (command register bit 10).
  private func updateINTx() {
    let high = isr != 0 && !msixEnabled && configuration.byte(0x05) & 0x04 == 0
    guard high != intxHigh, let intx else { return }
    intxHigh = high
    if high {
      intxRaised &+= 1
      intx.raise()
    } else {
      intx.lower()
    }
  }

  private func readMSIXTable(_ offset: Int, _ size: Int) -> UInt64 {
    var b = TableBytes()
    for e in msixTable {
      b.u64(e.address)
      b.u32(e.data)
      b.u32(e.masked ? 1 : 0)  // vector control
    }
    return b.read(at: offset, size: size)
  }

  private func writeMSIXTable(_ offset: Int, _ size: Int, _ value: UInt64) {
    for j in 0..<size {
      let o = offset + j
      guard o < 16 * msixTable.count else { break }
      let entry = o / 16
      let field = o % 16
      let byte = UInt64(truncatingIfNeeded: (value >> (8 * UInt64(j))) & 0xFF)
      switch field {
      case 0..<8:
        let shift = 8 * UInt64(field)
        msixTable[entry].address = (msixTable[entry].address & ~(0xFF << shift)) | (byte << shift)
      case 8..<12:
        let shift = 8 * UInt32(field - 8)
        msixTable[entry].data = (msixTable[entry].data & ~(0xFF << shift)) | (UInt32(byte) << shift)
      case 12:
        let wasMasked = msixTable[entry].masked
        msixTable[entry].masked = byte & 1 != 0
        if wasMasked && !msixTable[entry].masked && msixPending[entry] && msixEnabled && !msixFunctionMasked {
          sendMSIX(entry)
        }
      default: break
      }
    }
  }
}
