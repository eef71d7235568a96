import GuestImages
import TestHostSupport
import Testing

/// The built reference kernel is an image both boot paths accept.
@Suite struct ImageFormatTests {
  let image: [UInt8]

  init() throws { image = try GuestImages.referenceKernel }

  @Test func isAnX86_64ELF64Executable() throws {
    let header = try ELF64Header(image)
    #expect(header.type == 2)  // ET_EXEC
    #expect(header.machine == 0x3E)  // EM_X86_64
    #expect(header.entry >= 0x10_0000 && header.entry < 0x20_0000)
  }

  @Test func loadsOneSegmentAtOneMebibytePhysical() throws {
    let header = try ELF64Header(image)
    let loads = header.programHeaders.filter { $0.type == 1 }
    #expect(loads.count == 1)
    let segment = try #require(loads.first)
    #expect(segment.physicalAddress == 0x10_0000)
    #expect(segment.virtualAddress == segment.physicalAddress)
    #expect(segment.memorySize >= segment.fileSize)
    #expect(segment.physicalAddress + segment.memorySize <= 0x20_0000)  // below the frame pool
  }

  @Test func hasAMultibootHeaderWithLoadAddresses() throws {
    let header = try ELF64Header(image)
    let multiboot = try #require(MultibootHeader.find(in: image))
    #expect(multiboot.fileOffset < 8192 && multiboot.fileOffset % 4 == 0)
    #expect(multiboot.flags & 0x1_0000 != 0)  // a.out kludge: addresses valid
    #expect(multiboot.magic &+ multiboot.flags &+ multiboot.checksum == 0)
    let segment = try #require(header.programHeaders.first { $0.type == 1 })
    // The loader copies file bytes from (header offset - (header_addr - load_addr)) to load_addr.
    #expect(UInt64(multiboot.loadAddress) == segment.physicalAddress)
    #expect(UInt64(multiboot.fileOffset) - UInt64(multiboot.headerAddress - multiboot.loadAddress) == segment.offset)
    #expect(UInt64(multiboot.loadEndAddress - multiboot.loadAddress) == segment.fileSize)
    #expect(UInt64(multiboot.bssEndAddress - multiboot.loadAddress) == segment.memorySize)
    #expect(multiboot.entryAddress >= multiboot.loadAddress && multiboot.entryAddress < multiboot.loadEndAddress)
    #expect(UInt64(multiboot.entryAddress) != header.entry)  // 32-bit entry vs 64-bit entry
  }

  @Test(.requires(.llvmObjdump)) func kernelCodeUsesNoSSEOrMMXRegisters() throws {
    let objdump = try #require(HostTools.find("llvm-objdump"))
    guard let url = GuestImages.referenceKernelURL else {
      Issue.record("reference kernel missing")
      return
    }
    let result = try HostProcess.run(objdump, ["-d", url.path], timeout: 60)
    #expect(result.status == 0)
    #expect(result.output.contains("kernel_entry64"))
    let simdLines = result.output.split(separator: "\n").filter {
      $0.contains("%xmm") || $0.contains("%ymm") || $0.contains("%zmm") || $0.contains("%mm")
    }
    #expect(simdLines.isEmpty, "SIMD instructions: \(simdLines.prefix(3))")
  }
}
