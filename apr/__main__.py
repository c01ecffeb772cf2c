from apr.cli import main

main()
