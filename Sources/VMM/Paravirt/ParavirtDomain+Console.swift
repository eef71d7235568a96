/// `console_io` and `xen_version`: the hypervisor console and what the guest may ask about the ABI.
extension ParavirtDomain {
  /// The most bytes one `console_io` write takes (Xen caps its console writes at a page, too).
  static let consoleWriteLimit = 4096
  /// `xen_version(XENVER_extraversion)`: 16 bytes, NUL-padded.
  static let extraVersion = Array(".0-trivisor".utf8) + [UInt8](repeating: 0, count: 5)
  /// `XENVER_capabilities`: 1024 bytes naming the guest ABIs served.
  static let capabilities = Array("xen-3.0-x86_64 hvm-3.0-x86_64".utf8)

  func registerConsoleHypercalls(on dispatcher: HypercallDispatcher) {
    dispatcher.register(Xen.Hypercall.consoleIO.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in try self.consoleIO(call.arguments, caller) }
    }
    dispatcher.register(Xen.Hypercall.xenVersion.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in try self.xenVersion(call.arguments, caller) }
    }
  }

  /// `console_io(cmd, count, buffer)`: write sends `count` bytes to the machine's console (the
  /// serial output, where `--stop-on-output` watches too) and returns 0; read returns 0 bytes (a
  /// guest's console input arrives through its UART or virtio console).
  private func consoleIO(_ a: [UInt64], _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    switch Xen.ConsoleIO(rawValue: a[0]) {
    case .write:
      let count = a[1] & 0xFFFF_FFFF
      guard count <= UInt64(Self.consoleWriteLimit) else { throw HypercallFailure(.invalid) }
      let bytes = try read(Int(count), at: a[2], for: caller)
      machine.hypervisorConsole(bytes)
      return 0
    case .read:
      return 0
    case nil:
      throw HypercallFailure(.invalid)
    }
  }

  /// `xen_version(cmd, buffer)`: the version (major << 16 | minor), or a structure written to
  /// `buffer`; commands not served -ENOSYS.
  private func xenVersion(_ a: [UInt64], _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    switch Xen.Version(rawValue: a[0]) {
    case .version:
      return UInt64(Xen.version)
    case .extraVersion:
      try write(Self.extraVersion, at: a[1], for: caller)
      return 0
    case .capabilities:
      try write(Self.capabilities + [UInt8](repeating: 0, count: 1024 - Self.capabilities.count), at: a[1], for: caller)
      return 0
    case .getFeatures:
      // xen_feature_info { uint submap_idx; uint32 submap; }: no optional features in any submap.
      let index = try read(UInt32.self, at: a[1], for: caller)
      _ = index
      try write(UInt32(0), at: a[1] &+ 4, for: caller)
      return 0
    case .pageSize:
      return 4096
    case .compileInfo, .changeset, .platformParameters, .guestHandle, .commandLine, nil:
      throw HypercallFailure(.notImplemented)
    }
  }
}
