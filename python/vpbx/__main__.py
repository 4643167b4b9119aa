from vpbx.cli import main

main()
