#!/usr/bin/env node
// `npx @edge-memory/langgraph doctor URL [--api-key K | --token T]` (see src/doctor.js).
import { main } from '../src/doctor.js';

process.exitCode = await main(process.argv.slice(2));
