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

  /// The most host input bytes kept for a guest that does not read its console; more are dropped.
  static let consoleInputLimit = 1 << 16

  /// `console_io(cmd, count, buffer)`: write sends `count` bytes to the machine's console (the
  /// serial output, where `--stop-on-output` watches too) and returns 0; read moves up to `count`
  /// bytes of host console input to `buffer` and returns how many (0 when none is waiting; a
  /// kernel at ring 0 gets its input through its UART or virtio console instead).
  private func consoleIO(_ a: [UInt64], _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    let count = a[1] & 0xFFFF_FFFF
    switch Xen.ConsoleIO(rawValue: a[0]) {
    case .write:
      guard count <= UInt64(Self.consoleWriteLimit) else { throw HypercallFailure(.invalid) }
      let bytes = try read(Int(count), at: a[2], for: caller)
      machine.hypervisorConsole(bytes)
      return 0
    case .read:
      let bytes = consoleInput.removeFirst(upTo: Int(min(count, UInt64(Self.consoleWriteLimit))))
      guard !bytes.isEmpty else { return 0 }
      do throws(HypercallFailure) {
        try write(bytes, at: a[2], for: caller)
      } catch {
        // Nothing is lost to a bad buffer: the bytes go back in front.
        let rest = consoleInput.removeFirst(upTo: consoleInput.count)
        consoleInput.append(contentsOf: bytes + rest)
        throw error
      }
      return UInt64(bytes.count)
    case nil:
      throw HypercallFailure(.invalid)
    }
  }

  /// Whether host console input goes to `console_io(read)`: in the deprivileged mode, where the
  /// guest kernel cannot reach a UART.
  var takesConsoleInput: Bool { monitor != nil }

  /// Host console input for the guest: queued for `console_io(read)` (beyond
  /// `consoleInputLimit` bytes dropped), VIRQ_CONSOLE raised when the guest bound it. Under the
  /// machine lock.
  func receiveConsoleInput(_ bytes: [UInt8]) {
    guard !bytes.isEmpty else { return }
    consoleInput.append(contentsOf: bytes.prefix(max(0, Self.consoleInputLimit - consoleInput.count)))
    raiseVIRQ(.console, vcpu: 0)
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
