import BenchModel

/// A contiguous run of bytes inside a ``MemoryImage``.
public struct Segment: Equatable, Hashable, Sendable {
    /// Address of the first byte.
    public var address: UInt32
    /// The bytes, in address order.
    public var bytes: [UInt8]

    public init(address: UInt32, bytes: [UInt8]) {
        self.address = address
        self.bytes = bytes
    }

    /// One past the last address this segment covers.
    public var endAddress: UInt64 { UInt64(address) + UInt64(bytes.count) }

    /// The addresses this segment covers.
    public var range: Range<UInt64> { UInt64(address)..<endAddress }
}

/// Where execution starts, as an Intel HEX start record gives it. Kept as metadata only:
/// AVR and STM32 parts start from their reset vector, not from this.
public enum StartAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Record type 03: CS:IP of an 80x86 real-mode start.
    case segment(codeSegment: UInt16, instructionPointer: UInt16)
    /// Record type 05: a 32-bit linear start address (EIP).
    case linear(UInt32)

    public var description: String {
        switch self {
        case let .segment(cs, ip): return String(cFormat: "CS:IP %04X:%04X", cs, ip)
        case let .linear(eip): return String(cFormat: "EIP 0x%08X", eip)
        }
    }
}

/// Why a change to a ``MemoryImage`` was refused.
public enum MemoryImageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The same address was given two different values.
    case conflictingData(address: UInt32, existing: UInt8, new: UInt8)
    /// Two images that were to be merged both hold data in `range`.
    case overlap(range: Range<UInt64>)
    /// Data would run past the 32-bit address space.
    case beyondAddressSpace(address: UInt64)

    public var description: String {
        switch self {
        case let .conflictingData(address, existing, new):
            return String(cFormat: "address 0x%X already holds 0x%02X; refusing to overwrite it with 0x%02X", address, existing, new)
        case let .overlap(range):
            return String(cFormat: "the images overlap at 0x%X–0x%X (%d bytes)", range.lowerBound, range.upperBound - 1, range.count)
        case let .beyondAddressSpace(address):
            return String(cFormat: "data would reach address 0x%llX, beyond the 4 GiB address space", address)
        }
    }
}

/// A sparse memory image: the bytes a programmer should put on a chip, and the holes it should leave alone.
///
/// Segments are kept sorted, disjoint and coalesced, so two images with the same bytes compare equal
/// however they were built.
public struct MemoryImage: Equatable, Hashable, Sendable {
    /// The data, as sorted, non-touching segments.
    public private(set) var segments: [Segment] = []
    /// The start record of the file the image came from, if it had one.
    public var startAddress: StartAddress?

    /// An empty image.
    public init() {}

    /// An image holding `bytes` at `address` (raw binary load).
    public init(bytes: [UInt8], at address: UInt32 = 0) throws(MemoryImageError) {
        try write(bytes, at: address)
    }

    /// True when the image holds no data.
    public var isEmpty: Bool { segments.isEmpty }

    /// Number of bytes that hold data.
    public var byteCount: Int { segments.reduce(0) { $0 + $1.bytes.count } }

    /// The lowest address holding data.
    public var lowestAddress: UInt32? { segments.first?.address }

    /// One past the highest address holding data.
    public var endAddress: UInt64? { segments.last?.endAddress }

    /// The span from the lowest to one past the highest address holding data.
    public var span: Range<UInt64>? {
        guard let first = segments.first, let last = segments.last else { return nil }
        return UInt64(first.address)..<last.endAddress
    }

    /// Puts `bytes` at `address`. Writing a byte where the image already holds the same value is
    /// allowed; a different value is a ``MemoryImageError/conflictingData(address:existing:new:)``.
    public mutating func write(_ bytes: [UInt8], at address: UInt32) throws(MemoryImageError) {
        guard !bytes.isEmpty else { return }
        let start = UInt64(address)
        let end = start + UInt64(bytes.count)
        guard end <= 1 << 32 else { throw .beyondAddressSpace(address: end - 1) }

        // Fast path: appending right after the last segment, as HEX files do. Only the end address is
        // read first: a copy of the segment kept alive here would make the append copy its bytes, and
        // reading a file quadratic.
        let lastEnd = segments.last?.endAddress
        if lastEnd == start {
            segments[segments.count - 1].bytes.append(contentsOf: bytes)
            return
        }
        if let lastEnd, lastEnd < start {
            segments.append(Segment(address: address, bytes: bytes))
            return
        }

        // First segment that ends at or after `start` (touching counts, so it gets coalesced).
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].endAddress < start { lo = mid + 1 } else { hi = mid }
        }
        var last = lo
        var mergedStart = start, mergedEnd = end
        while last < segments.count, UInt64(segments[last].address) <= end {
            let segment = segments[last]
            // Check the overlapping bytes agree.
            let overlapLow = max(start, UInt64(segment.address))
            let overlapHigh = min(end, segment.endAddress)
            if overlapLow < overlapHigh {
                for a in overlapLow..<overlapHigh {
                    let old = segment.bytes[Int(a - UInt64(segment.address))]
                    let new = bytes[Int(a - start)]
                    if old != new { throw .conflictingData(address: UInt32(a), existing: old, new: new) }
                }
            }
            mergedStart = min(mergedStart, UInt64(segment.address))
            mergedEnd = max(mergedEnd, segment.endAddress)
            last += 1
        }
        var merged = [UInt8](repeating: 0, count: Int(mergedEnd - mergedStart))
        for segment in segments[lo..<last] {
            let offset = Int(UInt64(segment.address) - mergedStart)
            merged.replaceSubrange(offset..<offset + segment.bytes.count, with: segment.bytes)
        }
        let offset = Int(start - mergedStart)
        merged.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        segments.replaceSubrange(lo..<last, with: [Segment(address: UInt32(mergedStart), bytes: merged)])
    }

    /// The byte at `address`, or nil where the image holds no data.
    public subscript(address: UInt32) -> UInt8? {
        let a = UInt64(address)
        for segment in segments where segment.range.contains(a) {
            return segment.bytes[Int(a - UInt64(segment.address))]
        }
        return nil
    }

    /// The bytes of `range`, with `fill` where the image holds no data (0xFF is erased flash).
    public func bytes(in range: Range<UInt32>, fill: UInt8 = 0xFF) -> [UInt8] {
        var out = [UInt8](repeating: fill, count: range.count)
        let low = UInt64(range.lowerBound), high = UInt64(range.upperBound)
        for segment in segments where segment.endAddress > low && UInt64(segment.address) < high {
            let from = max(low, UInt64(segment.address)), to = min(high, segment.endAddress)
            let source = Int(from - UInt64(segment.address))
            let destination = Int(from - low)
            out.replaceSubrange(destination..<destination + Int(to - from),
                                with: segment.bytes[source..<source + Int(to - from)])
        }
        return out
    }

    /// True when any byte of `range` holds data.
    public func hasData(in range: Range<UInt64>) -> Bool {
        segments.contains { $0.endAddress > range.lowerBound && UInt64($0.address) < range.upperBound }
    }

    /// The start addresses of the `pageSize`-aligned pages that hold at least one byte of data, in order.
    /// Only these pages need writing; the rest stay erased.
    public func pagesHoldingData(pageSize: Int) -> [UInt32] {
        precondition(pageSize > 0)
        let size = UInt64(pageSize)
        var pages: [UInt32] = []
        for segment in segments {
            var page = UInt64(segment.address) / size * size
            while page < segment.endAddress {
                if pages.last != UInt32(page) { pages.append(UInt32(page)) }
                page += size
            }
        }
        return pages
    }

    /// The part of the image inside `range`.
    public func restricted(to range: Range<UInt64>) -> MemoryImage {
        var out = MemoryImage()
        for segment in segments where segment.endAddress > range.lowerBound && UInt64(segment.address) < range.upperBound {
            let from = max(range.lowerBound, UInt64(segment.address)), to = min(range.upperBound, segment.endAddress)
            let offset = Int(from - UInt64(segment.address))
            out.segments.append(Segment(address: UInt32(from), bytes: Array(segment.bytes[offset..<offset + Int(to - from)])))
        }
        return out
    }

    /// One production image from an application and a bootloader (the seed's "production firmware").
    /// Any address that both hold is refused, even with equal bytes: the two were built for
    /// separate regions, and an overlap means one of them is the wrong file.
    /// The application's start record is kept.
    public static func merging(application: MemoryImage, bootloader: MemoryImage) throws(MemoryImageError) -> MemoryImage {
        for a in application.segments {
            for b in bootloader.segments {
                let low = max(a.range.lowerBound, b.range.lowerBound), high = min(a.range.upperBound, b.range.upperBound)
                if low < high { throw .overlap(range: low..<high) }
            }
        }
        var merged = application
        for segment in bootloader.segments { try merged.write(segment.bytes, at: segment.address) }
        merged.startAddress = application.startAddress ?? bootloader.startAddress
        return merged
    }
}
