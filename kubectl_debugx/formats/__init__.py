"""Pure parsers and writers of data formats: pcap, CRI logs, log trees and tar, /proc probes."""
