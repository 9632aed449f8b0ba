"""Outbound transports: HTTP and SMTP. They import only `domain`."""
