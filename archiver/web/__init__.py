"""The web side: the HTTP client, page discovery, platforms, yt-dlp media, address policy."""
